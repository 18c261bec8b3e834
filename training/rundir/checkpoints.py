"""Checkpoints of a run: model, optimizer with its slots, step and epoch, in --model_dir.

TensorFlow writes a checkpoint's files first and then replaces the `checkpoint` state file atomically, so a kill at
any moment leaves the previous checkpoint listed and whole. A checkpoint damaged later (a truncated copy, a full
disk) fails its per-tensor checksums on restore; the run then falls back to the newest one that restores.

Every worker must take part in a save under MultiWorkerMirroredStrategy; only the chief writes into model_dir,
the others into model_dir/workers/<id> (kept, so their weights can be compared with the chief's)."""
import dataclasses
import json
import os
import time

import tensorflow as tf

DONE_FILE = "DONE"          # written when training reaches its final step: eval.py --watch stops after it
BEST_DIR, BEST_FILE = "best", "best.json"


class CheckpointError(Exception):
    """No checkpoint of the run can be restored, or one can't be written."""


class Checkpoints:
    def __init__(self, model_dir, keep, chief, worker, keep_best=0, out=print, **objects):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(step=self.step, epoch=self.epoch, **objects)
        self.directory = model_dir if chief else os.path.join(model_dir, "workers", str(worker))
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=keep,
                                                  checkpoint_name="ckpt")
        # Every worker keeps its own (in its own directory), so that each can restore the best weights at the end.
        self.best = Best(os.path.join(self.directory, BEST_DIR), keep_best, self.checkpoint)
        self.out = out
        self.restored = None  # the checkpoint restore_latest() used
        self.seconds = None   # how long the last save took

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore_latest(self):
        """Restores the newest checkpoint that reads back whole; returns the step to continue from (0: none)."""
        candidates = list(reversed(self.manager.checkpoints))
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except Exception as e:  # noqa: BLE001 - a damaged file fails in many ways (DataLoss, IndexError, ...)
                self.out(f"warning: {path} can't be restored ({str(e).splitlines()[0][:200]}); "
                         "trying the previous checkpoint")
                continue
            self.restored = path
            return int(self.step.numpy())
        if candidates:
            raise CheckpointError(f"none of the {len(candidates)} checkpoints in {self.directory} can be restored; "
                                  "move them away to start over")
        return 0

    def save(self, step, epoch):
        """Writes ckpt-<step>; the first save of a process says how long it took (`seconds`: the last one's), the
        time a stop needs besides its step (README 'Preemption')."""
        self.step.assign(step)
        self.epoch.assign(epoch)
        started = time.perf_counter()
        try:
            path = self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            # The `checkpoint` state file still lists the previous checkpoints; the failed one's files (a full
            # disk leaves a partial ckpt-N_temp/) would only take the space a rerun needs.
            prefix = os.path.join(self.directory, f"ckpt-{step}")
            for path in tf.io.gfile.glob(prefix + ".*") + tf.io.gfile.glob(prefix + "_temp*"):
                tf.io.gfile.rmtree(path) if tf.io.gfile.isdir(path) else tf.io.gfile.remove(path)
            reason = getattr(e, "message", str(e)).strip().splitlines()[0].split(" [Op:")[0]
            reason = reason.split("}} ")[-1]  # TensorFlow's "{{function_node ...}}" prefix
            raise CheckpointError(f"can't write checkpoint {prefix} ({reason}); the last checkpoint is "
                                  f"{self.latest or 'none yet'}, intact; free some space (or fix the error) and run "
                                  "the same command to resume") from None
        first, self.seconds = self.seconds is None, time.perf_counter() - started
        if first:
            self.out(f"checkpoint {path} written in {self.seconds:.1f} s")
        return path

    def consider_best(self, step, metrics, weights="raw"):
        """Keeps the weights of `step` among the best --keep_best by validation top-1 (`metrics`, of its `weights`:
        'raw' or 'ema'); returns their rank or None."""
        self.step.assign(step)
        return self.best.consider(step, metrics, weights)

    def restore_best(self):
        """Restores the best kept checkpoint into the run's objects; returns its record, or None if none is kept."""
        records = self.best.records()
        if not records:
            return None
        self.checkpoint.restore(os.path.join(self.best.directory, os.path.basename(records[0]["checkpoint"])))
        return records[0]

    def mark_done(self, step):
        with open(os.path.join(self.directory, DONE_FILE), "w") as f:
            json.dump({"final_step": step}, f)


class Best:
    """The best `keep` checkpoints by validation top-1, in best/ with best.json recording the split, the metric
    and each one's metrics and weights (raw or EMA)."""

    def __init__(self, directory, keep, checkpoint):
        self.directory, self.keep, self.checkpoint = directory, keep, checkpoint

    def records(self):
        return read_best(os.path.dirname(self.directory))

    def consider(self, step, metrics, weights="raw"):
        """Keeps this step's weights if they rank among the best; returns their rank (1 = best) or None."""
        if self.keep <= 0:
            return None
        records = [r for r in self.records() if r["step"] != step]
        entry = {"step": step, "weights": weights, **{k: metrics[k] for k in ("top_1", "top_5", "loss")}}
        ranked = sorted(records + [entry], key=lambda r: (-r["top_1"], r["step"]))
        kept, dropped = ranked[:self.keep], ranked[self.keep:]
        if entry not in kept:
            return None
        os.makedirs(self.directory, exist_ok=True)
        # Touching save_counter creates it, so that a best checkpoint written before the run's first save (an
        # eval before the first epoch ends) also holds it; restore() insists that every object it has matched.
        self.checkpoint.save_counter  # noqa: B018
        entry["checkpoint"] = self.checkpoint.write(os.path.join(self.directory, f"ckpt-{step}"))
        for record in dropped:
            for name in tf.io.gfile.glob(record["checkpoint"] + ".*"):
                tf.io.gfile.remove(name)
        _write_json(os.path.join(self.directory, BEST_FILE),
                    {"split": SELECTION_SPLIT, "metric": "top_1", "checkpoints": kept})
        return kept.index(entry) + 1


SELECTION_SPLIT = "validation"


def read_best(model_dir):
    """best.json's checkpoints: [{'step', 'weights', 'top_1', 'top_5', 'loss', 'checkpoint'}], best first."""
    return read_selection(model_dir)[1]


def read_selection(model_dir):
    """(the split best/ was chosen on, its checkpoints best first); (None, []) without best.json. Runs from before
    validation splits existed wrote a bare list, chosen on the test split."""
    path = os.path.join(model_dir, BEST_DIR, BEST_FILE)
    if not os.path.exists(path):
        return None, []
    with open(path) as f:
        record = json.load(f)
    if isinstance(record, list):
        return "test", record
    return record["split"], record["checkpoints"]


@dataclasses.dataclass(frozen=True)
class Choice:
    """The checkpoint a tool reads from a run, the weights to take from it (None: the EMA if it holds one), and
    why, in words for the console."""
    path: str
    weights: str | None
    reason: str


def choose(model_dir, which=None):
    """The checkpoint eval.py, predict.py, export.py and fine-tuning read: `which` (a prefix, or 'best') if given;
    else the best on the validation split, else the latest. Raises CheckpointError naming what is missing."""
    split, best = read_selection(model_dir)
    if which == "best" or (which is None and split == SELECTION_SPLIT and best):
        if not best:
            raise CheckpointError(f"{model_dir} has no best checkpoint (train.py keeps them with --keep_best when "
                                  "the run has a validation split)")
        # best.json holds the path as training saw it (maybe relative to another directory): take its name only.
        path = os.path.join(model_dir, BEST_DIR, os.path.basename(best[0]["checkpoint"]))
        weights = best[0].get("weights")
        how = f", {weights} weights" if weights else ""
        reason = f"the best {split} top-1 ({best[0]['top_1']:.4f}{how}) of the evaluations during training"
        if split == "test":
            reason += "; chosen on the test split, so its test numbers are optimistic"
        return Choice(path, weights, f"{path}: {reason}")
    if which:
        if not tf.io.gfile.exists(which + ".index"):
            raise CheckpointError(f"no checkpoint at {which} (give the prefix, e.g. {model_dir}/ckpt-100)")
        return Choice(which, None, f"{which}: as given")
    latest = tf.train.latest_checkpoint(model_dir)
    if not latest:
        raise CheckpointError(f"no checkpoint in {model_dir} yet")
    why = ("best/ was chosen on the test split (a run from before validation splits), so it is not used unless "
           "--checkpoint=best" if best else "the run has no validation split, so nothing was selected")
    done = os.path.exists(os.path.join(model_dir, DONE_FILE))
    return Choice(latest, None, f"{latest}: the {'final' if done else 'latest'} checkpoint ({why})")


def find(model_dir, which=None):
    """choose()'s checkpoint prefix."""
    return choose(model_dir, which).path


def _write_json(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2)
    os.replace(path + ".tmp", path)  # atomic: a reader sees the old or the new list, never half of one


def restore_weights(path, net, raw=False):
    """restore(path, model=net) with the weight EMA the checkpoint holds, if any, in place of the raw weights
    (raw=True: the raw ones). Returns (step, whether the EMA was used)."""
    from training.compute import ema  # ema imports the model; checkpoints stays importable without it
    step = restore(path, model=net)
    return step, (not raw and ema.install_from_checkpoint(net, path) > 0)


def restore(path, **objects):
    """Restores `objects` (e.g. model=...) from one checkpoint file prefix; returns its step. Raises
    CheckpointError if the file does not hold these objects (another network) or can't be read."""
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    try:
        tf.train.Checkpoint(step=step, **objects).restore(path).expect_partial().assert_existing_objects_matched()
    except Exception as e:  # noqa: BLE001 - shape mismatches, damaged files: all mean "not this model's"
        raise CheckpointError(f"can't restore {path} into this run's model: {str(e).splitlines()[0]}") from None
    return int(step.numpy())
