"""Evaluates a train.py run on its full test split and writes <model_dir>/eval/metrics.json.

    python eval.py --model_dir=runs/cifar10_resnet_v2_50
    python eval.py --model_dir=runs/cifar10_resnet_v2_50 --watch   # each new checkpoint, until the final one
"""
from console import cuda_noise

cuda_noise.start()  # TensorFlow's CUDA probing lines, dropped where there is no GPU
import os  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from console import logs  # noqa: E402
from flags import shared  # noqa: E402

flags.DEFINE_string("model_dir", None, "The run directory of train.py.", required=True)
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix (e.g. DIR/ckpt-390), or 'best' (the run's best by "
                    "validation top-1); default: the best on validation, else the latest.")
flags.DEFINE_string("dataset", None, "Evaluate on this dataset instead of the run's (same classes).")
flags.DEFINE_string("data_dir", None, "tfds data directory, if it moved since training.")
flags.DEFINE_integer("batch_size", None, "Global eval batch size (default: the run's).")
flags.DEFINE_bool("watch", False, "Evaluate each new checkpoint once as training writes them; stop after the final.")
shared.define_tta()
shared.define_raw_weights()
flags.DEFINE_integer("precise_bn_examples", 0, "Recompute the batch-norm statistics from this many training "
                     "images before evaluating (0: the checkpoint's own, which training already recomputed).")
flags.DEFINE_float("timeout", 3600, "With --watch: give up after this many seconds without a new checkpoint.")
flags.adopt_module_key_flags(shared)  # --help lists them with this tool's own
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import data
    from training.distribute import strategy
    from training.evaluation import checkpoint_eval
    logs.quiet()
    config = checkpoint_eval.EvalConfig(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.dataset, FLAGS.data_dir,
                                        FLAGS.batch_size, FLAGS.watch, FLAGS.timeout, FLAGS.tta, FLAGS.raw_weights,
                                        FLAGS.precise_bn_examples)
    try:
        checkpoint_eval.run(config)
    except (checkpoint_eval.EvalError, data.DataError, strategy.StrategyError) as e:
        logs.fail(e)


if __name__ == "__main__":
    logs.run(main)
