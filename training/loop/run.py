"""The training loop: build under the strategy, resume, then train in counted steps with logging, eval and
checkpoints as "every N steps" blocks."""
import os
import time

import keras
import tensorflow as tf

import data
from data import service as data_service
from training.compute import bn_stats, ema as averaging, network, optimizer as optim, precision, step as steps
from training.distribute import failures, strategy as strategies
from training.errors import TrainingError
from training.evaluation import evaluator as evaluation
from training.loop import budget, preemption, testing
from training.loop.blocks import Blocks, Window, make_train_loop, steps_until_event
from training.rundir import checkpoints, run_dir, run_lock, summaries, wall_time, warm_start

__all__ = ["TrainingError", "Stopped", "run"]


class Stopped(Exception):
    """Training stopped by a signal after checkpointing; `status` is the process exit status to use."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def run(config, info, out=print, length_rule=None, finished=None):
    """Trains the run in config.model_dir from its latest checkpoint (or from scratch); returns the final metrics.

    Raises TrainingError (bad setup, non-finite loss, full disk, another process writing the run), Stopped
    (SIGTERM/SIGINT, after a checkpoint) or failures.PeerLost (a worker of a multi-worker run was lost).
    length_rule(steps, steps_per_epoch): the recipe's length-dependent fields, for a --time_budget run's plan.
    finished(results): called after the final line, before anything is torn down (train.py ends the process
    there: the tf.data iterators' destructors waited 40-44 s after a run's final line on one core)."""
    task = strategies.task(config.strategy)
    run_dir.check_compatible(config)  # read-only, before the lock: a refused run leaves even LOCK untouched
    with lock(config.model_dir, task, out):
        return train(config, info, out, length_rule, finished)


def lock(model_dir, task, out):
    """The run's one-writer lock, on the directory this process writes (a worker's own under multi-worker)."""
    directory = model_dir if task is None or task.is_chief else os.path.join(model_dir, "workers", str(task.index))
    try:
        return run_lock.Lock(directory, out)
    except run_lock.RunLocked as e:
        raise TrainingError(str(e)) from None
    except OSError as e:
        raise run_dir.unwritable(model_dir, e) from None


def train(config, info, out=print, length_rule=None, finished=None):
    strategy = strategies.create(config.strategy, config.num_gpus, config.worker_join_timeout, out)
    strategies.check_batch_size(strategy, config.batch_size)
    chief = strategies.is_chief(strategy)
    info = warm_start.normalization(config, info)
    saved, from_chief = run_dir.read_config(config.model_dir) if chief else None, strategies.from_chief(strategy)
    config = precision.resolve_config(config, saved, from_chief, out)
    if config.time_budget:
        config = budget.resolve(config, info, strategy, saved, length_rule,
                                (build, Evaluation.of, train_batches, make_train_step), from_chief, out)
    out(f"{strategies.describe(strategy)}; {config.train_steps} steps of {config.batch_size} images "
        f"({config.steps_per_epoch} steps per epoch)")
    out(config.describe_recipe())
    for line in data.describe_splits(info, config.data_dir):
        out(line)
    if config.data_service:  # before anything is built or written
        data_service.wait_for(config.data_service)
        out(service_promise(config.data_service))
    net, opt, ema = build(config, info, strategy)
    run_dir.check_writable(config.model_dir, net)
    ckpts = checkpoints.Checkpoints(config.model_dir, config.keep_checkpoints, chief, strategies.worker_id(strategy),
                                    keep_best=config.keep_best if info.has_validation else 0, out=out,
                                    model=net, optimizer=opt,
                                    **({"ema": ema} if ema else {}))
    step = resume_or_warm_start(ckpts, net, config, out)
    writers = run_dir.start(config, info, strategy, chief, step)
    iterator = train_batches(config, info, strategy, step)
    train_step = make_train_step(config, info, net, opt)
    evaluate = Evaluation.of(config, info, strategy, net, ema, out)
    progress = summaries.Progress(config.train_steps, config.batch_size, step, out)
    wall = wall_time.WallTime(config.model_dir, chief, step)
    clock = budget.Clock(config, step, out)
    metrics, window = None, Window()
    metrics_csv = summaries.MetricsCsv(config.model_dir, chief, step, ema=ema is not None)
    profiler = summaries.Profiler(config.model_dir, config.profile_steps, out)

    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    with preemption.Preemption() as signals, failures.Guard(multi_worker, info, config.data_dir, lambda: step,
                                                            lambda: ckpts.latest):
        blocks = Blocks(make_train_loop(strategy, train_step, config.xla, ema, signals.flag, opt))
        while step < config.train_steps:
            profiler.before(step)
            ran, sums, first_bad, stop_votes = blocks(iterator, step, min(config.steps_per_loop,
                                                                           steps_until_event(step, config)))
            profiler.after(step + ran)
            check_finite(first_bad, sums, config, ckpts, out)
            window.add(sums, ran)
            step += ran
            row = {}
            if step % config.log_every_steps == 0 or step == config.train_steps:
                row = log(step, window.take(), opt, progress, writers[0], config)
                clock.check(step)
            elif progress.due(step, config.steps_per_epoch):  # the console only: TensorBoard keeps its steps
                progress.log(step, window.peek(), float(opt.learning_rate))
            stop = stop_votes.sum() > 0 and step < config.train_steps  # at the last step, finish
            epoch_end = step % config.steps_per_epoch == 0 or step == config.train_steps
            eval_due = step % config.eval_every_steps == 0 or step == config.train_steps
            if epoch_end or eval_due:  # whether or not a stop came: a resumed run recomputes the same
                evaluate.refresh_statistics()
            if epoch_end or stop:
                ckpts.save(step, step // config.steps_per_epoch)
                wall.record(progress.elapsed())
            if eval_due and not stop:
                metrics = evaluate()
                row.update(report_eval(step, metrics, writers[1:], ckpts, evaluate.split, out))
            metrics_csv.write(step, step / config.steps_per_epoch, row)
            if stop:
                raise stopped(step, ckpts, blocks, signals, stop_votes)
        results = testing.test_at_end(evaluate, metrics, ckpts, step)
        if chief:
            testing.write_results(config.model_dir, results)
            ckpts.mark_done(step)
        wall.record(progress.elapsed())
    out(f"final: step {step}  {testing.describe(results)}  {wall.describe()}  "
        f"{progress.images_per_second(step):.1f} images/s")
    if config.time_budget:
        out(clock.summary())
    if finished and not multi_worker:  # a worker's last collective may still be in flight to its peers
        finished(results)
    return results


def stopped(step, ckpts, blocks, signals, votes):
    """The Stopped exception of a run that a signal stopped after `step`, with the two times a grace period must
    cover: a step, and the checkpoint."""
    compiled = " with the compilation" if blocks.calls == 1 else ""
    times = f"steps took {blocks.seconds_per_step:.2f} s{compiled}; the checkpoint took {ckpts.seconds:.1f} s"
    if signals.requested:
        what = (f"stopped by {preemption.NAMES[signals.signal]} at step {step}, {signals.seconds_since():.1f} s "
                f"after the signal ({times})")
    else:
        what = f"stopped at step {step} because another worker was signalled ({times})"
    return Stopped(f"{what}; checkpoint {ckpts.latest} written; run the same command to resume",
                   preemption.exit_status(votes))


def train_batches(config, info, strategy, step):
    """The distributed iterator of training batches from `step` on (the stream is a pure function of the seed).
    They are pixels, which make_train_step's step normalizes on each replica's device."""
    augment = data.Augment(**config.augment())
    return iter(strategy.distribute_datasets_from_function(
        lambda ctx: data.make_train_dataset(info, data_dir=config.data_dir, global_batch_size=config.batch_size,
                                            seed=config.seed, start_step=step, input_context=ctx,
                                            deterministic=config.deterministic, augment=augment, pixels=True,
                                            service=config.data_service)))


def make_train_step(config, info, net, opt):
    """The per-replica train step of this run, for train_batches' pixels."""
    return steps.make_train_step(
        net, opt, global_batch_size=config.batch_size, weight_decay=config.weight_decay,
        label_smoothing=config.label_smoothing, skip_nonfinite=config.nan_policy == "skip_batch",
        poison_step=config.debug_nan_at_step, normalization=(info.mean, info.std))


def service_promise(address):
    """The start-up line of a run whose training batches come from a tf.data service: what it still promises."""
    return (f"training batches from the tf.data service at {address} (evaluation local): each is bit-identical to "
            "one batch of the local stream, but they arrive in the order its workers finish them, and those in "
            "flight at a stop or on a lost worker are lost or, after a resume, repeated; not bit-identical to a "
            "run without it (docs/reliability.md)")


def resume_or_warm_start(ckpts, net, config, out):
    """The step to continue from: the run's own latest checkpoint, else 0 with --init_checkpoint's weights."""
    step = ckpts.restore_latest()
    if step:
        ignored = "; --init_checkpoint ignored" if config.init_checkpoint else ""
        out(f"resuming from {ckpts.restored} at step {step}{ignored}")
    elif config.init_checkpoint:
        warm_start.warm_start(net, config, out)
    return step


class Evaluation:
    """The evaluations of a run: precise batch-norm statistics for the weights and for their EMA, then the
    validation split (the test split, for monitoring only, when the run has none) with each; `test()` evaluates
    the test split the same way, which the run does once, at its end."""

    def __init__(self, evaluator, ema, precise, out=print, split="test", test=None):
        self.evaluator, self.ema, self.precise, self.out = evaluator, ema, precise, out
        self.split = split
        self._make_test, self._test = test, None  # an Evaluator of the test split, built on first use

    @classmethod
    def of(cls, config, info, strategy, net, ema, out=print):
        """The evaluations of the run `config` describes: its validation (else test) split, and precise
        statistics from its training split."""
        split = "validation" if info.has_validation else "test"
        make = lambda split: evaluation.Evaluator(strategy, net, info, config.batch_size,  # noqa: E731
                                                  config.data_dir, split=split)
        return cls(make(split), ema,
                   bn_stats.PreciseBatchNorm(strategy, net, info, batch_size=config.batch_size,
                                             examples=config.precise_bn_examples, seed=config.seed,
                                             data_dir=config.data_dir), out, split, lambda: make("test"))

    def refresh_statistics(self):
        """Recomputes the batch-norm statistics of the weights, and of the EMA with its weights swapped in."""
        line = self.precise.recompute()
        if self.ema is not None and self.precise.layers:
            with self.ema.swapped_in():
                self.precise.recompute()
                self.ema.keep_statistics()
        if line:
            self.out(line + (" (and as much again for the EMA)" if self.ema is not None else ""))

    def __call__(self, evaluator=None):
        """The raw weights' metrics, with the EMA's under 'ema' when the run has one, and the 'seconds' it took."""
        evaluator = evaluator or self.evaluator
        started = time.perf_counter()
        metrics = evaluator()
        if self.ema is not None:
            with self.ema.swapped_in():
                metrics["ema"] = evaluator()
        metrics["seconds"] = time.perf_counter() - started
        return metrics

    def test(self):
        """__call__ on the test split."""
        if self.split == "test":
            return self()
        self._test = self._test or self._make_test()
        return self(self._test)


def build(config, info, strategy):
    """Model, optimizer and weight EMA (None without --ema_decay) under the strategy's scope, the optimizer built
    before the first step."""
    keras.utils.set_random_seed(config.seed)
    steps.set_graph_rewrites()
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
        ema = averaging.WeightEma(net, config.ema_decay) if config.ema_decay else None
    return net, opt, ema


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


def report_eval(step, metrics, writers, ckpts, split, out):
    """Console line, TensorBoard (eval/, and eval_ema/ for the EMA), best checkpoints on the validation split (the
    raw weights or the EMA, whichever has the higher top-1; what eval.py, predict.py and export.py then use);
    returns the metrics.csv columns."""
    averaged = metrics.get("ema")
    rank = None
    if split == "validation":  # nothing is ever selected on the test split
        weights, chosen = testing.better_weights(metrics)
        rank = ckpts.consider_best(step, chosen, weights)
    best = f" (kept as best #{rank})" if rank else ""
    ema_part = f"  EMA top-1 {averaged['top_1']:.4f}  top-5 {averaged['top_5']:.4f}" if averaged else ""
    out(f"eval at step {step}: top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
        f"loss {metrics['loss']:.4f}{ema_part}  ({metrics['num_examples']} {split} examples in "
        f"{metrics['seconds']:.1f} s){best}")
    columns = {}
    for prefix, values, writer in (("eval", metrics, writers[0]), ("eval_ema", averaged, writers[-1])):
        if values:
            summaries.scalars(writer, step, {k: values[k] for k in ("loss", "top_1", "top_5")})
            columns.update({f"{prefix}_{k}": values[k] for k in ("loss", "top_1", "top_5")})
    return columns
