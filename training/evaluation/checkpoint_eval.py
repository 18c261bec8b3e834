"""eval.py's library side: restore a run's model from a checkpoint and evaluate the full test split, once or
for every checkpoint as training writes them; each evaluation writes metrics.json and the reports (confusion
matrix, per-class precision / recall) into <model_dir>/eval."""
import dataclasses
import json
import os
import time

import tensorflow as tf

import data
from data import preprocessing
from training.compute import bn_stats, network, step as steps
from training.distribute import strategy as strategies
from training.evaluation import evaluator as evaluation, reports
from training.rundir import checkpoints, run_dir


class EvalError(Exception):
    """A run directory or checkpoint that can't be evaluated, with a one-line reason."""


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    model_dir: str
    checkpoint: str | None = None   # a checkpoint prefix, or 'best'; None: the best on validation, else the latest
    dataset: str | None = None      # None: the run's
    data_dir: str | None = None     # None: the run's
    batch_size: int | None = None   # None: the run's
    watch: bool = False
    timeout: float = 3600.0         # seconds --watch waits for a new checkpoint
    tta: str = "none"               # test-time augmentation: none | flip | flip+crops (large images)
    raw_weights: bool = False       # the raw weights even when the run has a weight EMA
    precise_bn_examples: int = 0    # > 0: recompute the batch-norm statistics from this many training images first


def run(config, out=print):
    """Evaluates and writes model_dir/eval/metrics.json; returns the metrics of the last checkpoint evaluated."""
    if config.watch:
        _wait_for(os.path.join(config.model_dir, run_dir.CONFIG_FILE), config.timeout)
    try:
        run_config = run_dir.require_config(config.model_dir)
        if not run_config["include_top"]:
            raise EvalError(run_dir.NO_CLASSIFIER.format(model_dir=config.model_dir))
        info = eval_info(config, run_config)
    except ValueError as e:
        raise EvalError(str(e)) from None
    check_tta(config.tta, info)
    steps.set_graph_rewrites()  # as the run compiled its evaluations
    strategy = strategies.create("auto")
    with strategy.scope():
        net, _ = network.create(run_config, info.num_classes)
    hardware, dtype = network.target(run_config)
    precise = bn_stats.PreciseBatchNorm(strategy, net, info, batch_size=run_config["batch_size"],
                                        examples=config.precise_bn_examples, seed=run_config["seed"],
                                        data_dir=config.data_dir or run_config["data_dir"])
    writer = metrics = evaluate = None
    for choice in _checkpoints(config):
        path = choice.path
        try:
            step, averaged = checkpoints.restore_weights(path, net, config.raw_weights or choice.weights == "raw")
        except checkpoints.CheckpointError as e:
            raise EvalError(str(e)) from None
        recomputed = precise.recompute()
        if recomputed:
            out(recomputed)
        # With these weights (restored, statistics recomputed): a frozen graph's are fixed when it is made, so each
        # checkpoint gets its own evaluation; on the variables, one evaluation (traced once) serves them all.
        inference = network.for_inference(net, hardware, dtype, strategy.num_replicas_in_sync)
        if evaluate is None or inference is not net:
            evaluate = evaluation.Evaluator(strategy, inference, info, config.batch_size or run_config["batch_size"],
                                            config.data_dir or run_config["data_dir"], tta=config.tta)
        metrics = {**evaluate(), "step": step, "checkpoint": path, "weights": "ema" if averaged else "raw",
                   "tta": config.tta}
        # Created only now: a refused checkpoint leaves the run directory untouched.
        writer = writer or tf.summary.create_file_writer(os.path.join(config.model_dir, "eval"))
        rows = reports.write(os.path.join(config.model_dir, "eval"), metrics, info.class_names, writer)
        report(metrics, rows, out, None if config.watch else choice.reason)
        write_metrics(config.model_dir, metrics, info)
    if metrics is None:
        raise EvalError(f"no checkpoint in {config.model_dir} yet")
    return metrics


def check_tta(tta, info):
    if tta not in preprocessing.TTA_MODES:
        raise EvalError(f"--tta must be one of {', '.join(preprocessing.TTA_MODES)}, not {tta!r}")
    if tta == "flip+crops" and info.small_images:
        raise EvalError(f"--tta=flip+crops crops a margin small images ({info.image_size} px) don't have; use "
                        "--tta=flip")


def eval_info(config, run_config):
    """The eval split's DatasetInfo, with the run's own class names and normalization: what its weights were
    trained with (imported ImageNet weights expect [-1, 1], not tfds' ImageNet mean / std)."""
    own = config.dataset in (None, run_config["dataset"])  # the run's own splits, as training dealt them
    info = data.get_info(config.dataset or run_config["dataset"], config.data_dir or run_config["data_dir"],
                         run_config["image_size"], validation_split=run_config["validation_split"] if own else 0.0,
                         test_split=run_config["test_split"] if own else None)
    if info.num_classes != run_config["num_classes"]:
        raise EvalError(f"{info.name} has {info.num_classes} classes but the run was trained on "
                        f"{run_config['num_classes']}")
    trained_on = run_dir.read_dataset_info(config.model_dir)
    if trained_on is None:  # a run from before config.json recorded its dataset
        return info
    return dataclasses.replace(info, class_names=trained_on.class_names, mean=trained_on.mean, std=trained_on.std)


def _checkpoints(config):
    if config.watch and config.checkpoint is None:
        return (checkpoints.Choice(path, None, path) for path in _watch(config.model_dir, config.timeout))
    try:
        return [checkpoints.choose(config.model_dir, config.checkpoint)]
    except checkpoints.CheckpointError as e:
        raise EvalError(str(e)) from None


def _watch(model_dir, timeout, poll_seconds=1.0):
    """Yields every checkpoint training lists, each once and in step order, until the run's DONE marker says the
    final one has been seen. The `checkpoint` state file lists a checkpoint only after its files are complete."""
    seen, idle_since = set(), time.monotonic()
    while True:
        done = _final_step(model_dir)  # read before listing: a run that is done has listed its final checkpoint
        state = tf.train.get_checkpoint_state(model_dir)
        listed = sorted(state.all_model_checkpoint_paths if state else [], key=_step_of)
        new = [p for p in listed if p not in seen and (done is None or _step_of(p) <= done)]
        for path in new:
            seen.add(path)
            if tf.io.gfile.exists(path + ".index"):  # --keep_checkpoints may have deleted it meanwhile
                yield path
            idle_since = time.monotonic()
        if done is not None and any(_step_of(p) >= done for p in seen):
            return
        if time.monotonic() - idle_since > timeout:
            raise EvalError(f"no new checkpoint in {model_dir} for {timeout:.0f} s; is training running?")
        time.sleep(poll_seconds)


def _wait_for(path, timeout, poll_seconds=1.0):
    start = time.monotonic()
    while not os.path.exists(path) and time.monotonic() - start < timeout:
        time.sleep(poll_seconds)


def _final_step(model_dir):
    path = os.path.join(model_dir, checkpoints.DONE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["final_step"]


def _step_of(path):
    return int(path.rsplit("-", 1)[-1])


def report(metrics, per_class, out=print, reason=None):
    how = [w for w, on in ((f"{metrics['weights']} weights", metrics["weights"] == "ema"),
                           (f"tta {metrics['tta']}", metrics["tta"] != "none")) if on]
    out(f"step {metrics['step']}: top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
        f"loss {metrics['loss']:.4f}  examples {metrics['num_examples']}  ({metrics['checkpoint']}"
        f"{'; ' + ', '.join(how) if how else ''})")
    if reason:
        out(f"checkpoint {reason}")
    for line in reports.table(per_class):
        out(line)


TRAINING_RESULTS = ("final", "best_on_validation")


def training_results(path):
    """The parts of a metrics.json that train.py wrote: the test numbers of its final and best checkpoints."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: record[k] for k in TRAINING_RESULTS if k in record}


def write_metrics(model_dir, metrics, info):
    """metrics.json; the confusion matrix is in its own CSV (1,000,000 cells for ImageNet)."""
    record = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
    record["per_class_accuracy"] = dict(zip(info.class_names, metrics["per_class_accuracy"]))
    path = os.path.join(model_dir, "eval", "metrics.json")
    record.update(training_results(path))  # what train.py wrote there at its end stays
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
    os.replace(path + ".tmp", path)
