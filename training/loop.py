"""The training loop: build under the strategy, resume, then train in counted steps with logging, eval and
checkpoints as "every N steps" blocks."""
import json
import math
import os

import keras
import tensorflow as tf

import data
import model as resnet
from training import checkpoints, evaluation, optimizer as optim, step as steps, strategy as strategies, summaries


class TrainingError(Exception):
    """A run that can't start or go on, with a one-line reason."""


def run(config, info, out=print):
    """Trains the run in config.model_dir from its latest checkpoint (or from scratch); returns the final metrics."""
    strategy = strategies.create(config.strategy, config.num_gpus)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise TrainingError(f"--batch_size={config.batch_size} is not divisible by the "
                            f"{strategy.num_replicas_in_sync} replicas; use a multiple of {strategy.num_replicas_in_sync}")
    chief = strategies.is_chief(strategy)
    check_model_dir(config)
    out(f"{strategies.describe(strategy)}; {config.train_steps} steps of {config.batch_size} images "
        f"({config.steps_per_epoch} steps per epoch)")
    net, opt = build(config, info, strategy)
    ckpts = checkpoints.Checkpoints(config.model_dir, config.keep_checkpoints, chief, strategies.worker_id(strategy),
                                    model=net, optimizer=opt)
    step = ckpts.restore_latest()
    if step:
        out(f"resuming from {ckpts.latest} at step {step}")
    train_writer, eval_writer = start_run_directory(config, info, strategy, chief, step)
    iterator = iter(strategy.distribute_datasets_from_function(
        lambda ctx: data.make_train_dataset(info, data_dir=config.data_dir, global_batch_size=config.batch_size,
                                            seed=config.seed, start_step=step, input_context=ctx,
                                            deterministic=config.deterministic)))
    train_step = steps.make_train_step(net, opt, global_batch_size=config.batch_size,
                                       weight_decay=config.weight_decay, label_smoothing=config.label_smoothing)
    train_loop = make_train_loop(strategy, train_step, config.xla)
    evaluate = evaluation.Evaluator(strategy, net, info, config.batch_size, config.data_dir)
    progress = summaries.Progress(config.train_steps, config.batch_size, step, out)
    metrics, window, window_steps = None, {}, 0  # window: summed step outputs since the last log

    while step < config.train_steps:
        n = min(config.steps_per_loop, steps_until_event(step, config))
        sums = train_loop(iterator, tf.constant(n))
        window = {k: window.get(k, 0.0) + v.numpy() for k, v in sums.items()}
        step, window_steps = step + n, window_steps + n
        if step % config.log_every_steps == 0 or step == config.train_steps:
            train_metrics = from_sums(window, window_steps)
            window, window_steps = {}, 0
            if not math.isfinite(train_metrics["loss"]):
                raise TrainingError(f"loss is {train_metrics['loss']} at step {step}; the last good checkpoint "
                                    f"is {ckpts.latest}; lower --learning_rate or check the data")
            lr = float(opt.learning_rate)
            steps_per_s = progress.log(step, train_metrics, lr)
            summaries.scalars(train_writer, step, {**train_metrics, "learning_rate": lr, "steps_per_second":
                                                   steps_per_s, "examples_per_second": steps_per_s * config.batch_size})
        if step % config.steps_per_epoch == 0 or step == config.train_steps:
            ckpts.save(step, step // config.steps_per_epoch)
        if step % config.eval_every_steps == 0 or step == config.train_steps:
            metrics = evaluate()
            out(f"eval at step {step}: top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
                f"loss {metrics['loss']:.4f}  ({metrics['num_examples']} examples)")
            summaries.scalars(eval_writer, step, {k: metrics[k] for k in ("loss", "top_1", "top_5")})

    metrics = metrics or evaluate()
    out(f"final: step {step}  test top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
        f"wall time {summaries.duration(progress.elapsed())}  {progress.images_per_second(step):.1f} images/s")
    return metrics


def start_run_directory(config, info, strategy, chief, step):
    """config.json and the summary writers; the config and a grid of augmented inputs once, at step 0."""
    if chief:
        write_config(config, strategy)
    train_writer, eval_writer = summaries.writers(config.model_dir, chief)
    if step == 0:
        summaries.config_summary(train_writer, config)
        first = next(iter(data.make_train_dataset(info, data_dir=config.data_dir, global_batch_size=16,
                                                  seed=config.seed)))
        summaries.image_grid(train_writer, first[0].numpy(), info.mean, info.std)
    return train_writer, eval_writer


def build(config, info, strategy):
    """Model and optimizer under the strategy's scope, the optimizer built before the first step."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.dtype != "float32":
        keras.mixed_precision.set_global_policy(f"mixed_{config.dtype}")
    schedule = optim.Schedule(
        base_lr=config.lr, total_steps=config.train_steps, kind=config.lr_schedule,
        warmup_steps=round(config.warmup_epochs * config.steps_per_epoch),
        boundaries=tuple(round(e * config.steps_per_epoch) for e in config.lr_decay_epochs))
    with strategy.scope():
        net, _ = resnet.create(config.depth, info.num_classes, config.image_size, config.unit, config.arch,
                               config.width, config.sync_bn, config.bn_momentum)
        opt = optim.create(schedule, config.momentum, config.nesterov, loss_scaling=config.dtype == "float16")
        opt.build(net.trainable_variables)
    return net, opt


def make_train_loop(strategy, train_step, xla=False):
    """loop(iterator, n) runs n steps inside one tf.function call and returns the replicas' summed metrics."""
    # XLA compiles the per-replica step; compiling the whole strategy.run fails.
    replica_step = tf.function(train_step, jit_compile=True) if xla else train_step

    @tf.function
    def loop(iterator, num_steps):
        totals = {k: tf.constant(0.0) for k in ("cross_entropy", "l2", "correct", "examples")}
        for _ in tf.range(num_steps):
            sums = strategy.run(replica_step, args=next(iterator))
            totals = {k: totals[k] + strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                      for k, v in sums.items()}
        return totals
    return loop


def from_sums(sums, num_steps):
    """Means over the logged steps from the summed step outputs."""
    cross_entropy = float(sums["cross_entropy"] / sums["examples"])
    l2 = float(sums["l2"] / num_steps)
    return {"loss": cross_entropy + l2, "cross_entropy": cross_entropy, "l2": l2,
            "top_1": float(sums["correct"] / sums["examples"])}


def steps_until_event(step, config):
    """Steps to the next log, checkpoint (epoch end), eval or the end, whichever comes first."""
    periods = (config.log_every_steps, config.steps_per_epoch, config.eval_every_steps)
    return min([every - step % every for every in periods] + [config.train_steps - step])


def check_model_dir(config):
    """Refuses a model_dir whose run has another architecture, before anything in it is touched."""
    path = os.path.join(config.model_dir, "config.json")
    if not os.path.exists(path):
        if tf.train.latest_checkpoint(config.model_dir):
            raise TrainingError(f"{config.model_dir} holds checkpoints but no config.json; use another --model_dir")
        return
    with open(path) as f:
        saved = json.load(f)["config"]
    theirs = {k: saved.get(k) for k in config.architecture()}
    diff = {k: (theirs[k], v) for k, v in config.architecture().items() if theirs[k] != v}
    if diff:
        what = ", ".join(f"{k}={a} (asked {b})" for k, (a, b) in diff.items())
        raise TrainingError(f"{config.model_dir} holds another run: {what}; use another --model_dir")


def write_config(config, strategy):
    os.makedirs(config.model_dir, exist_ok=True)
    record = {"config": json.loads(config.to_json()), "tensorflow": tf.__version__, "keras": keras.__version__,
              "strategy": strategies.describe(strategy)}
    with open(os.path.join(config.model_dir, "config.json"), "w") as f:
        json.dump(record, f, indent=2)
