"""The training loop: build under the strategy, resume, then train in counted steps with logging, eval and
checkpoints as "every N steps" blocks."""
import keras
import tensorflow as tf

import data
from training import (checkpoints, evaluation, network, optimizer as optim, preemption, run_dir, step as steps,
                      strategy as strategies, summaries, warm_start)
from training import precision
from training.run_dir import TrainingError

__all__ = ["TrainingError", "Stopped", "run"]


class Stopped(Exception):
    """Training stopped by a signal after checkpointing; `status` is the process exit status to use."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def run(config, info, out=print):
    """Trains the run in config.model_dir from its latest checkpoint (or from scratch); returns the final metrics.

    Raises TrainingError (bad setup, non-finite loss) or Stopped (SIGTERM/SIGINT, after a checkpoint)."""
    strategy = strategies.create(config.strategy, config.num_gpus)
    strategies.check_batch_size(strategy, config.batch_size)
    chief = strategies.is_chief(strategy)
    run_dir.check_compatible(config)
    info = warm_start.normalization(config, info)
    config = precision.resolve_config(config, out)
    out(f"{strategies.describe(strategy)}; {config.train_steps} steps of {config.batch_size} images "
        f"({config.steps_per_epoch} steps per epoch)")
    net, opt = build(config, info, strategy)
    run_dir.check_writable(config.model_dir, net)
    ckpts = checkpoints.Checkpoints(config.model_dir, config.keep_checkpoints, chief, strategies.worker_id(strategy),
                                    keep_best=config.keep_best, out=out, model=net, optimizer=opt)
    step = resume_or_warm_start(ckpts, net, config, out)
    train_writer, eval_writer = run_dir.start(config, info, strategy, chief, step)
    iterator = iter(strategy.distribute_datasets_from_function(
        lambda ctx: data.make_train_dataset(info, data_dir=config.data_dir, global_batch_size=config.batch_size,
                                            seed=config.seed, start_step=step, input_context=ctx,
                                            deterministic=config.deterministic)))
    train_loop = make_train_loop(strategy, steps.make_train_step(
        net, opt, global_batch_size=config.batch_size, weight_decay=config.weight_decay,
        label_smoothing=config.label_smoothing, skip_nonfinite=config.nan_policy == "skip_batch",
        poison_step=config.debug_nan_at_step), config.xla)
    evaluate = evaluation.Evaluator(strategy, net, info, config.batch_size, config.data_dir)
    progress = summaries.Progress(config.train_steps, config.batch_size, step, out)
    metrics, window = None, Window()
    metrics_csv = summaries.MetricsCsv(config.model_dir, chief, step)
    profiler = summaries.Profiler(config.model_dir, config.profile_steps, out)

    with preemption.Preemption() as signals:
        while step < config.train_steps:
            n = min(config.steps_per_loop, steps_until_event(step, config))
            profiler.before(step)
            sums, first_bad, stop_votes = train_loop(iterator, tf.constant(step, tf.int64), tf.constant(n),
                                                     tf.constant(signals.requested))
            profiler.after(step + n)
            check_finite(int(first_bad), sums, config, ckpts, out)
            window.add(sums, n)
            step += n
            row = {}
            if step % config.log_every_steps == 0 or step == config.train_steps:
                row = log(step, window.take(), opt, progress, train_writer, config)
            stop = float(stop_votes) > 0 and step < config.train_steps  # at the last step, just finish
            if step % config.steps_per_epoch == 0 or step == config.train_steps or stop:
                ckpts.save(step, step // config.steps_per_epoch)
            if (step % config.eval_every_steps == 0 or step == config.train_steps) and not stop:
                metrics = evaluate()
                report_eval(step, metrics, eval_writer, ckpts, out)
                row.update({f"eval_{k}": metrics[k] for k in ("loss", "top_1", "top_5")})
            metrics_csv.write(step, step / config.steps_per_epoch, row)
            if stop:
                raise Stopped(f"stopped by signal at step {step}; checkpoint {ckpts.latest} written; run the same "
                              "command to resume", signals.exit_status)

    metrics = metrics or evaluate()
    if chief:
        ckpts.mark_done(step)
    out(f"final: step {step}  test top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
        f"wall time {summaries.duration(progress.elapsed())}  {progress.images_per_second(step):.1f} images/s")
    return metrics


def resume_or_warm_start(ckpts, net, config, out):
    """The step to continue from: the run's own latest checkpoint, else 0 with --init_checkpoint's weights."""
    step = ckpts.restore_latest()
    if step:
        ignored = "; --init_checkpoint ignored" if config.init_checkpoint else ""
        out(f"resuming from {ckpts.restored} at step {step}{ignored}")
    elif config.init_checkpoint:
        warm_start.warm_start(net, config, out)
    return step


def build(config, info, strategy):
    """Model and optimizer under the strategy's scope, the optimizer built before the first step."""
    keras.utils.set_random_seed(config.seed)
    # Grappler's arithmetic optimizer rewrites an AddN inside the multi-step loop into an accumulator whose
    # temporary variable then "already exists" (AlreadyExistsError at the third call of a ResNet-20, batch 128,
    # on TF 2.21 CPU; tests/test_cli.py keeps that run). Off, that run trained at 648 images/s; on, at 622
    # until the crash.
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    precision.set_global(config.dtype)
    schedule = optim.Schedule(
        base_lr=config.lr, total_steps=config.train_steps, kind=config.lr_schedule,
        warmup_steps=round(config.warmup_epochs * config.steps_per_epoch),
        boundaries=tuple(round(e * config.steps_per_epoch) for e in config.lr_decay_epochs))
    with strategy.scope():
        net, _ = network.create(config, info.num_classes)
        if config.freeze_backbone:
            network.freeze_backbone(net)
        opt = optim.create(schedule, config.momentum, config.nesterov, loss_scaling=config.dtype == "float16")
        opt.build(net.trainable_variables)
    return net, opt


SUM_KEYS = ("cross_entropy", "l2", "correct", "examples", "nonfinite")


def make_train_loop(strategy, train_step, xla=False):
    """loop(iterator, step, n, stop_requested) runs steps step+1 .. step+n inside one tf.function call.

    Returns the replicas' summed step outputs, the first step whose loss was not finite (-1: none), and how many
    replicas (over all workers) saw a stop request, so that all of them stop after the same step."""
    # XLA compiles the per-replica step; compiling the whole strategy.run fails.
    replica_step = tf.function(train_step, jit_compile=True) if xla else train_step

    @tf.function
    def loop(iterator, first_step, num_steps, stop_requested):
        totals = {k: tf.constant(0.0) for k in SUM_KEYS}
        first_bad = tf.constant(-1, tf.int64)
        for i in tf.range(tf.cast(num_steps, tf.int64)):
            step = first_step + i + 1
            images, labels = next(iterator)
            sums = strategy.run(replica_step, args=(images, labels, step))
            sums = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()}
            first_bad = tf.where((first_bad < 0) & (sums["nonfinite"] > 0), step, first_bad)
            totals = {k: totals[k] + sums[k] for k in SUM_KEYS}
        votes = strategy.run(lambda: tf.cast(stop_requested, tf.float32))
        return totals, first_bad, strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)
    return loop


class Window:
    """Summed step outputs since the last log line."""

    def __init__(self):
        self.sums, self.steps = {}, 0

    def add(self, sums, num_steps):
        self.sums = {k: self.sums.get(k, 0.0) + float(v) for k, v in sums.items()}
        self.steps += num_steps

    def take(self):
        sums, num_steps = self.sums, self.steps
        self.sums, self.steps = {}, 0
        cross_entropy = sums["cross_entropy"] / max(sums["examples"], 1.0)
        l2 = sums["l2"] / num_steps
        return {"loss": cross_entropy + l2, "cross_entropy": cross_entropy, "l2": l2,
                "top_1": sums["correct"] / max(sums["examples"], 1.0), "skipped_steps": sums["nonfinite"]}


def check_finite(first_bad, sums, config, ckpts, out):
    """--nan_policy=stop: raise before anything is saved; skip_batch: say how many steps were skipped."""
    if first_bad < 0:
        return
    if config.nan_policy == "stop":
        raise TrainingError(f"the loss was not finite at step {first_bad}; stopped without saving, the last good "
                            f"checkpoint is {ckpts.latest}; lower --learning_rate, check the data, or pass "
                            "--nan_policy=skip_batch")
    out(f"warning: skipped {int(float(sums['nonfinite']))} step(s) with a non-finite loss, the first at step "
        f"{first_bad} (--nan_policy=skip_batch)")


def log(step, metrics, opt, progress, writer, config):
    """Console line and TensorBoard scalars; returns the metrics.csv columns."""
    lr = float(opt.learning_rate)
    steps_per_s = progress.log(step, metrics, lr)
    summaries.scalars(writer, step, {**metrics, "learning_rate": lr, "steps_per_second": steps_per_s,
                                     "examples_per_second": steps_per_s * config.batch_size})
    return {"train_loss": metrics["loss"], "train_top_1": metrics["top_1"], "learning_rate": lr,
            "images_per_second": steps_per_s * config.batch_size}


def report_eval(step, metrics, writer, ckpts, out):
    rank = ckpts.consider_best(step, metrics)
    best = f" (kept as best #{rank})" if rank else ""
    out(f"eval at step {step}: top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
        f"loss {metrics['loss']:.4f}  ({metrics['num_examples']} examples){best}")
    summaries.scalars(writer, step, {k: metrics[k] for k in ("loss", "top_1", "top_5")})


def steps_until_event(step, config):
    """Steps to the next log, checkpoint (epoch end), eval or the end, whichever comes first."""
    periods = (config.log_every_steps, config.steps_per_epoch, config.eval_every_steps)
    # A profile starts and ends at loop-call boundaries, so its steps are exactly the ones asked for.
    marks = [m - step for m in (config.profile_steps[0] - 1, config.profile_steps[1]) if m > step] \
        if config.profile_steps else []
    return min([every - step % every for every in periods] + [config.train_steps - step] + marks)
