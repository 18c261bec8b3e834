"""Command-line flags of train.py and eval.py, and the one place they become a frozen training Config."""
from absl import flags

from flags import recipes
from flags.shared import DTYPES

__all__ = ["ConfigError", "define_data_flags", "define_model_flags", "define_training_flags", "length_rule",
           "make_config", "recipes"]


def __getattr__(name):
    """ConfigError and make_config, imported on first use: they import TensorFlow, which the tools that only take
    flags/shared.py's flags load after their flags are checked (so a bad flag stays a one-line error)."""
    if name in ("ConfigError", "make_config", "length_rule"):
        from flags import config
        return getattr(config, name)
    raise AttributeError(f"module 'flags' has no attribute {name!r}")


def define_data_flags():
    flags.DEFINE_string("dataset", "cifar10", "cifar10, cifar100, imagenet2012, another tfds image dataset "
                        "(imagenette, oxford_flowers102, ...) or folder:/path with <class>/ folders, or train/<class>/ "
                        "and test/<class>/ (and val/<class>/).")
    flags.DEFINE_float("validation_split", None, "Fraction of the training split held out (by a hash of each "
                       "image's identity) for the evaluations during training and the choice of best/ (default: the "
                       "dataset's own validation split beside its test split, else 0.1, at most 10,000 images; none "
                       "for cifar10 and cifar100, as measured; 0: none, the evaluations then monitor the test split "
                       "and nothing is selected). A resumed run keeps its own.")
    flags.DEFINE_float("test_split", None, "Flat folders (folder:/path with <class>/*) only: fraction held out by hash "
                       "as the test split (default 0.1).")
    flags.DEFINE_string("data_dir", None, "tfds data directory (default: tfds' own, or $TFDS_DATA_DIR).")
    flags.DEFINE_integer("image_size", None, "Model input size (default: 32 for small-image datasets, else the "
                         "model's: 224, Inception V3 299).")
    flags.DEFINE_bool("strict", False, "Stop at the first unreadable image of a folder dataset instead of skipping it.")
    flags.DEFINE_integer("batch_size", None, "Global batch size, split over replicas "
                         "(default: the recipe's, 128 for small images, 256 for large).")
    flags.DEFINE_string("data_service", None, "grpc://HOST:PORT of a tf.data service dispatcher (python -m "
                        "data.service): its workers prepare the training batches, evaluation stays local; batches "
                        "then arrive in the workers' order, so no --deterministic (docs/distributed.md).")


def define_model_flags():
    import model
    flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard events, config.json "
                        "(default: runs/<dataset>_resnet_v2_<depth>, or runs/<dataset>_<model>).")
    flags.DEFINE_enum("model", "resnet_v2", list(model.MODELS), "Network: " + "; ".join(
        f"{name}: {entry.description}" for name, entry in model.MODELS.items()) + ".")
    flags.DEFINE_integer("depth", 50, "ResNet depth: 18, 34, 50, 101, 152, 200, or a CIFAR depth 6n+2 / 9n+2.")
    flags.DEFINE_enum("unit", "auto", ["auto", "basic", "bottleneck"], "Residual unit.")
    flags.DEFINE_enum("arch", "auto", ["auto", "cifar", "imagenet"], "Network family (auto: by depth).")
    flags.DEFINE_float("width", 1.0, "Width multiplier on every stage's filters (wide ResNets).")
    flags.DEFINE_float("bn_momentum", 0.997, "Batch-norm moving-average decay (the chapter's 0.997 remembers ~330 "
                       "steps; use 0.9-0.99 for runs of a few hundred steps).")
    flags.DEFINE_bool("sync_bn", False, "Synchronized batch norm: statistics over the global batch, not per replica.")
    flags.DEFINE_string("init_checkpoint", None, "Fine-tune: start a new run from this run directory's best (else "
                        "latest) checkpoint, or from a checkpoint prefix in one; the classifier is new when the "
                        "class count differs. Ignored when --model_dir already has checkpoints.")
    flags.DEFINE_bool("freeze_backbone", False, "Train only the classifier; frozen batch norm uses its moving "
                      "statistics.")


def define_training_flags():
    r = recipes.BASE
    flags.DEFINE_float("train_epochs", None, f"Epochs to train (default: the recipe's, {r['train_epochs']} for small "
                       "images, 90 for large).")
    flags.DEFINE_integer("train_steps", None, "Steps to train; overrides --train_epochs.")
    flags.DEFINE_string("time_budget", None, "Train to the clock instead of --train_epochs/--train_steps: a duration "
                        "(90s, 45m, 2h) from the process' start to its end; the run measures its speed, then plans "
                        "its steps, evaluations and checkpoints to end within it (docs/training.md).")
    flags.DEFINE_float("learning_rate", None, "Base learning rate at batch 128 (small images) or 256 (large), "
                       f"scaled linearly with --batch_size (default {r['learning_rate']}).")
    flags.DEFINE_enum("recipe", recipes.DEFAULT_RECIPE, list(recipes.RECIPES), "classic: the papers' recipes; "
                      "scaled (default): cosine, Nesterov, weight decay scaled to the run's length; modern: scaled "
                      "plus a weight EMA, and for large images label smoothing, RandAugment, mixup and cutmix. "
                      "Explicit flags override it.")
    flags.DEFINE_enum("lr_schedule", None, ["piecewise", "cosine"], "Learning-rate schedule after warm-up "
                      "(default: the recipe's, classic piecewise, scaled and modern cosine).")
    flags.DEFINE_list("lr_decay_epochs", None, "Epochs where a piecewise schedule multiplies the rate by 0.1 "
                      "(default: the recipe's fractions of the run, 50 %,75 % for small images (91,136.5 of 182 "
                      "epochs), 1/3,2/3,8/9 for large (30,60,80 of 90)).")
    flags.DEFINE_float("warmup_epochs", None, "Linear warm-up epochs (default: 0 for small images, 5 for large).")
    flags.DEFINE_float("momentum", r["momentum"], "SGD momentum.")
    flags.DEFINE_bool("nesterov", None, "Nesterov momentum (default: the recipe's, classic off, scaled and modern "
                      "on).")
    flags.DEFINE_float("weight_decay", None, "L2 weight decay, wd * sum(w^2) / 2, on conv and dense kernels "
                       "(default: classic 2e-4 for small images, 1e-4 for large; scaled and modern those times "
                       "sqrt(the papers' steps / this run's), e.g. 1.66e-3 for 930 steps).")
    flags.DEFINE_float("label_smoothing", None, "Label smoothing of the cross-entropy (default: the recipe's, "
                       "0; modern 0.1 on large images).")
    flags.DEFINE_float("ema_decay", None, "Weight EMA decay, warmed up as timm's ModelEmaV3 (default: the recipe's, "
                       "0 = off; modern a horizon of 5 % of the run, 1 - 1 / (0.05 steps)); evaluated beside the raw "
                       "weights, used by eval, predict, export.")
    flags.DEFINE_integer("cutout", None, "Cutout square in pixels (default 0; 16 is the CIFAR paper's).")
    flags.DEFINE_integer("randaugment_layers", None, "RandAugment operations per image (default: the recipe's, "
                         "0 / modern 2 on large images).")
    flags.DEFINE_float("randaugment_magnitude", None, "RandAugment magnitude, of 10 (default 9).")
    flags.DEFINE_float("mixup_alpha", None, "Mixup Beta(alpha, alpha) (default: the recipe's, 0 / modern 0.2 on "
                       "large images).")
    flags.DEFINE_float("cutmix_alpha", None, "CutMix Beta(alpha, alpha) (default: the recipe's, 0 / modern 1.0 on "
                       "large images).")
    flags.DEFINE_float("mixup_prob", None, "Share of batches mixed up (default: 1, or 0.5 beside cutmix).")
    flags.DEFINE_float("cutmix_prob", None, "Share of batches cut-mixed (default: 1, or 0.5 beside mixup).")
    flags.DEFINE_integer("precise_bn_examples", 2048, "Before each eval and checkpoint, recompute the batch-norm "
                         "statistics from this many training images (0: keep the moving averages).")
    flags.DEFINE_float("epochs_between_evals", 1.0, "Evaluate on the validation split this often (on the test split, "
                       "for monitoring only, with --validation_split=0); the test split once at the end.")
    flags.DEFINE_integer("steps_per_loop", 20, "Train steps per tf.function call (less host overhead on GPUs).")
    flags.DEFINE_integer("log_every_steps", 100, "Console line and TensorBoard scalars every this many steps.")
    flags.DEFINE_integer("keep_checkpoints", 5, "Most recent checkpoints kept (one is written every epoch).")
    flags.DEFINE_integer("keep_best", 1, "Best checkpoints kept by validation top-1, in <model_dir>/best/ with "
                         "best.json; eval.py, predict.py and export.py use the best one (none without a validation "
                         "split: they use the final checkpoint).")
    flags.DEFINE_enum("nan_policy", "stop", ["stop", "skip_batch"], "A non-finite loss: stop without saving (the "
                      "last good checkpoint stays), or skip that batch's update and go on.")
    flags.DEFINE_integer("debug_nan_at_step", None, "Testing aid: make the loss of this step NaN, to rehearse "
                         "--nan_policy and your alerting.")
    flags.DEFINE_integer("seed", 0, "Seed of the initialization, data order and augmentation.")
    flags.DEFINE_bool("deterministic", False, "Deterministic ops and input order (slower; on a CPU, float32 under --dtype=auto).")
    # auto is the default since it kept accuracy: ResNet-20, 30 epochs on the shared subset, 3 seeds each, mean
    # test top-1 0.6299 in bfloat16 vs 0.6283 in float32 (README 'Performance').
    flags.DEFINE_enum("dtype", "auto", DTYPES,
                      "Compute dtype; variables stay float32 (float16 uses dynamic loss scaling). auto: the faster "
                      "one measured: bfloat16 on CPUs with AMX, GPUs of compute capability >= 8.0 and TPUs, float16 "
                      "on 7.x GPUs, else float32. A resumed run keeps the dtype it began with.")
    flags.DEFINE_bool("xla", False, "Compile the per-replica train step with XLA.")
    flags.DEFINE_enum("strategy", "auto", ["auto", "one_device", "mirrored", "multi_worker", "tpu"],
                      "auto: MultiWorkerMirroredStrategy inside a Slurm step of 2+ tasks (srun), else "
                      "MirroredStrategy on 2+ GPUs, else one device; multi_worker reads TF_CONFIG, else Slurm's "
                      "variables.")
    flags.DEFINE_integer("num_gpus", None, "GPUs to use (default: all visible; 0: CPU only).")
    flags.DEFINE_float("worker_join_timeout", 600, "Multi-worker: seconds to wait for every worker of "
                       "TF_CONFIG or of the Slurm step to start before giving up with an error naming the missing ones.")
    flags.DEFINE_list("profile_steps", None, "first,last: trace these train steps with tf.profiler into "
                      "<model_dir>/train (TensorBoard's Profile tab; pip install tensorboard-plugin-profile).")
    flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into this many logical devices (to try --strategy=mirrored "
                         "without GPUs).")
