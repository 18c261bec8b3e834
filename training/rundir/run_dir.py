"""The run directory: start-up checks before anything in it is touched, and what a run writes there first."""
import dataclasses
import errno
import json
import os
import shutil
import socket

import keras
import numpy as np
import tensorflow as tf

import data
from training.config import Config
from training.distribute import strategy as strategies
from training.errors import TrainingError
from training.rundir import run_lock, summaries


CONFIG_FILE = "config.json"
NO_CLASSIFIER = ("{model_dir} holds a backbone without a classifier (imported from a _notop file); fine-tune it: "
                 "train.py --init_checkpoint={model_dir}")


def read_config(model_dir, part="config"):
    """A part of the config.json a run saved in model_dir, as a dict: "config" (the resolved training Config) or
    "dataset" (its DatasetInfo; absent in runs written before it was recorded). None if there is none. Raises
    ValueError if the file can't be read."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        return {**Config.defaults(), **record["config"]} if part == "config" else record.get(part)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is unreadable ({e})") from None


def require_config(model_dir):
    """read_config's "config", or ValueError saying that model_dir is no run (or its config.json is unreadable)."""
    config = read_config(model_dir)
    if config is None:
        raise ValueError(f"{model_dir} has no {CONFIG_FILE}: is it a train.py --model_dir?")
    return config


def read_dataset_info(model_dir):
    """The DatasetInfo the run trained on (class names, normalization, image size), as recorded in config.json,
    so that predicting needs no dataset; None for runs that did not record it."""
    record = read_config(model_dir, "dataset")
    if record is None:
        return None
    return data.DatasetInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()})


def check_compatible(config):
    """Refuses a model_dir whose run has another architecture or dataset, before anything in it is touched."""
    try:
        saved = read_config(config.model_dir)
    except ValueError as e:
        raise TrainingError(f"{e}; use another --model_dir") from None
    if saved is None:
        if tf.train.latest_checkpoint(config.model_dir):
            raise TrainingError(f"{config.model_dir} holds checkpoints but no {CONFIG_FILE}; use another --model_dir")
        return
    if saved["imported_from"]:
        raise TrainingError(f"{config.model_dir} holds imported weights ({saved['imported_from']}), not a run to "
                            f"resume; fine-tune them into a new --model_dir with --init_checkpoint={config.model_dir}")
    if saved["freeze_backbone"] != config.freeze_backbone:  # it changes what the optimizer (and a checkpoint) holds
        had = "with" if saved["freeze_backbone"] else "without"
        raise TrainingError(f"{config.model_dir} was trained {had} --freeze_backbone; pass the same, or start a new "
                            f"--model_dir with --init_checkpoint={config.model_dir}")
    if config.dtype != "auto" and saved.get("dtype") not in (None, "auto", config.dtype):
        # A resume keeps the dtype the run began in (training/compute/precision.py); an explicit other one would change it.
        raise TrainingError(f"{config.model_dir} trains in {saved['dtype']}, not --dtype={config.dtype}; pass "
                            f"--dtype={saved['dtype']} or leave --dtype out to resume it, or start a new --model_dir "
                            f"with --init_checkpoint={config.model_dir}")
    held_out = lambda c: (c["validation_split"], c["test_split"])  # noqa: E731
    if held_out(saved) != held_out(dataclasses.asdict(config)):
        # A resume reads the recorded split (flags/config.py); a given other one would move images between
        # training, selection and test.
        raise TrainingError(f"{config.model_dir} holds {describe_split(*held_out(saved))}, not "
                            f"{describe_split(*held_out(dataclasses.asdict(config)))}; leave --validation_split and "
                            "--test_split out to resume it with its own, or start a new --model_dir")
    theirs = {k: saved.get(k) for k in config.architecture()}
    diff = {k: (theirs[k], v) for k, v in config.architecture().items() if theirs[k] != v}
    if diff:
        what = ", ".join(f"{k}={a} (asked {b})" for k, (a, b) in diff.items())
        raise TrainingError(f"{config.model_dir} holds another run: {what}; use another --model_dir")


def describe_split(validation, test):
    """config.json's split fields in words."""
    what = ("the dataset's own validation split" if validation is None else
            "no validation split (--validation_split=0)" if validation == 0 else
            f"a validation split of --validation_split={validation:g}")
    return what + (f" and --test_split={test:g}" if test else "")


def unwritable(model_dir, error):
    """The TrainingError for a model_dir that can't be written; in a container run as another user (docker run
    --user), a directory Docker created for the mount belongs to root: it says so."""
    hint = ""
    if error.errno == errno.EACCES and run_lock.in_container() and os.getuid() != 0:
        hint = (f" (this container runs as uid {os.getuid()}: create the mounted directory on the host first, "
                "e.g. mkdir -p runs, so that it is yours, or pass --user of its owner)")
    return TrainingError(f"can't write to --model_dir={model_dir}: {error.strerror or error}{hint}")


def check_writable(model_dir, model, margin=2.0):
    """Fails early if model_dir can't be written or lacks room for `margin` checkpoints of weights + momentum."""
    try:
        os.makedirs(model_dir, exist_ok=True)
        # One name per process: the workers of a multi-worker run probe the same directory at the same time.
        probe = os.path.join(model_dir, f".write_test.{socket.gethostname()}.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise unwritable(model_dir, e) from None
    weights = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    needed = int(margin * 2 * weights)  # each checkpoint holds the weights and one momentum slot per weight
    free = shutil.disk_usage(model_dir).free
    if free < needed:
        raise TrainingError(f"--model_dir={model_dir} has {free / 2**20:.0f} MiB free but checkpoints need about "
                            f"{needed / 2**20:.0f} MiB; free some space or use another directory")


def start(config, info, strategy, chief, step):
    """config.json and the summary writers (train, eval, and eval_ema with --ema_decay); the config and a grid of
    augmented inputs once, at step 0."""
    if chief:
        write_config(config, info, strategy)
    names = ("train", "eval", "eval_ema") if config.ema_decay else ("train", "eval")
    writers = summaries.writers(config.model_dir, chief, resumed_step=step, names=names)
    if step == 0:
        summaries.config_summary(writers[0], config)
        first = next(iter(data.make_train_dataset(info, data_dir=config.data_dir,
                                                  global_batch_size=min(16, info.num_train),
                                                  seed=config.seed, augment=data.Augment(**config.augment()))))
        summaries.image_grid(writers[0], first[0].numpy(), info.mean, info.std)
    return writers


def write_config(config, info, strategy, directory=None, **extra):
    """config.json in `directory` (default: the run's): the config, the dataset, the versions, the devices (a
    strategy, or a description) and any `extra` top-level parts."""
    devices = strategy if isinstance(strategy, str) else strategies.describe(strategy)
    record = {"config": json.loads(config.to_json()), "dataset": dataclasses.asdict(info),
              "tensorflow": tf.__version__, "keras": keras.__version__, "strategy": devices, **extra}
    path = os.path.join(directory or config.model_dir, CONFIG_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
    os.replace(path + ".tmp", path)
