"""eval.py's library side: restore a run's model from a checkpoint and evaluate the full test split, once or
for every checkpoint as training writes them."""
import dataclasses
import json
import os

import tensorflow as tf

import data
import model as resnet
from training import checkpoints, evaluation, strategy as strategies


class EvalError(Exception):
    """A run directory or checkpoint that can't be evaluated, with a one-line reason."""


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    model_dir: str
    checkpoint: str | None = None   # a checkpoint prefix; None: the latest in model_dir
    dataset: str | None = None      # None: the run's
    data_dir: str | None = None     # None: the run's
    batch_size: int | None = None   # None: the run's
    watch: bool = False
    timeout: float = 3600.0         # seconds --watch waits for a new checkpoint


def load_run_config(model_dir):
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        raise EvalError(f"{model_dir} has no config.json: is it a train.py --model_dir?")
    with open(path) as f:
        return json.load(f)["config"]


def run(config, out=print):
    """Evaluates and writes model_dir/eval/metrics.json; returns the metrics of the last checkpoint evaluated."""
    run_config = load_run_config(config.model_dir)
    info = data.get_info(config.dataset or run_config["dataset"], config.data_dir or run_config["data_dir"],
                         run_config["image_size"])
    if info.num_classes != run_config["num_classes"]:
        raise EvalError(f"{info.name} has {info.num_classes} classes but the run was trained on "
                        f"{run_config['num_classes']}")
    strategy = strategies.create("auto")
    with strategy.scope():
        net, _ = resnet.create(run_config["depth"], info.num_classes, run_config["image_size"], run_config["unit"],
                               run_config["arch"], run_config["width"], run_config["sync_bn"], run_config["bn_momentum"])
    evaluate = evaluation.Evaluator(strategy, net, info, config.batch_size or run_config["batch_size"],
                                    config.data_dir or run_config["data_dir"])
    metrics = None
    for path in _checkpoints(config, run_config):
        try:
            step = checkpoints.restore(path, model=net)
        except (tf.errors.OpError, AssertionError, ValueError) as e:
            raise EvalError(f"can't restore {path} into this run's model: {str(e).splitlines()[0]}") from None
        metrics = {**evaluate(), "step": step, "checkpoint": path}
        report(metrics, info, out)
        write_metrics(config.model_dir, metrics, info)
    if metrics is None:
        raise EvalError(f"no checkpoint in {config.model_dir} yet")
    return metrics


def _checkpoints(config, run_config):
    if config.checkpoint:
        if not tf.io.gfile.exists(config.checkpoint + ".index"):
            raise EvalError(f"no checkpoint at {config.checkpoint} (give the prefix, e.g. {config.model_dir}/ckpt-100)")
        return [config.checkpoint]
    if not config.watch:
        latest = tf.train.latest_checkpoint(config.model_dir)
        return [latest] if latest else []
    return _watch(config.model_dir, run_config["train_steps"], config.timeout)


def _watch(model_dir, final_step, timeout):
    """Yields each new checkpoint once, oldest first, and stops after the one of the final step."""
    for path in tf.train.checkpoints_iterator(model_dir, min_interval_secs=1, timeout=timeout):
        yield path
        if int(path.rsplit("-", 1)[-1]) >= final_step:
            return


def report(metrics, info, out=print):
    out(f"step {metrics['step']}: top-1 {metrics['top_1']:.4f}  top-5 {metrics['top_5']:.4f}  "
        f"loss {metrics['loss']:.4f}  examples {metrics['num_examples']}  ({metrics['checkpoint']})")
    out("per-class accuracy: " + "  ".join(f"{name} {acc:.3f}" for name, acc in
                                           zip(info.class_names, metrics["per_class_accuracy"])))


def write_metrics(model_dir, metrics, info):
    os.makedirs(os.path.join(model_dir, "eval"), exist_ok=True)
    record = {**metrics, "per_class_accuracy": dict(zip(info.class_names, metrics["per_class_accuracy"]))}
    path = os.path.join(model_dir, "eval", "metrics.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
    os.replace(path + ".tmp", path)
