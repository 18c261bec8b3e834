"""What a run shows: TensorBoard scalars, images, text and hparams under model_dir, and console progress."""
import contextlib
import csv
import io
import json
import os
import time

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams
from tensorflow.core.util import event_pb2


def writers(model_dir, chief, resumed_step=0, names=("train", "eval")):
    """A summary writer per name (a subdirectory of model_dir); no-ops off the chief, so only one worker writes
    events.

    A run resumed at step s first drops the events its previous process wrote after s (it was killed before its
    next checkpoint and will write those steps again), so the curves continue without duplicate steps."""
    if not chief:
        return tuple(tf.summary.create_noop_writer() for _ in names)
    directories = [os.path.join(model_dir, name) for name in names]
    if resumed_step:
        for directory in directories:
            drop_events_after(directory, resumed_step)
    return tuple(tf.summary.create_file_writer(d) for d in directories)


def drop_events_after(directory, step):
    """Rewrites the event files in `directory` that hold events past `step`, without those events."""
    for path in tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*")):
        events, whole = read_events(path)
        kept = [e for e in events if e.step <= step]
        if len(kept) == len(events) and whole:
            continue
        with tf.io.TFRecordWriter(path + ".tmp") as f:
            for event in kept:
                f.write(event.SerializeToString())
        os.replace(path + ".tmp", path)  # the file keeps its name, so TensorBoard reads it in the same order


def read_events(path):
    """(events, whole): the events of one file, up to a truncated last record (a full disk or a kill mid-write)."""
    events = []
    try:
        for record in tf.data.TFRecordDataset(path):
            events.append(event_pb2.Event.FromString(record.numpy()))
    except tf.errors.DataLossError:
        return events, False
    return events, True


def scalars(writer, step, values):
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(name, value)
    writer.flush()


def config_summary(writer, config):
    """The resolved config as a text table and in the hparams dashboard, once per run."""
    fields = json.loads(config.to_json())
    table = "\n".join(["| flag | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in fields.items()])
    simple = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in fields.items()}
    with writer.as_default(step=0):
        tf.summary.text("config", table)
        hparams.hparams(simple)
    writer.flush()


def image_grid(writer, images, mean, std, step=0, columns=4):
    """The first augmented inputs, de-normalized and tiled into one grid image."""
    images = np.clip(images * np.asarray(std) + np.asarray(mean), 0, 255) / 255.0
    n = (len(images) // columns) * columns or len(images)
    images = images[:n]
    rows = [np.concatenate(list(images[i:i + columns]), axis=1) for i in range(0, n, columns)]
    with writer.as_default(step=step):
        tf.summary.image("augmented_inputs", np.concatenate(rows, axis=0)[None], max_outputs=1)
    writer.flush()


class MetricsCsv:
    """<model_dir>/metrics.csv: one row per step that logged training metrics or evaluated, for pandas users.
    A resumed run first drops the rows its previous process wrote after the checkpoint it resumes from."""
    FILE = "metrics.csv"
    COLUMNS = ("step", "epoch", "train_loss", "train_top_1", "eval_loss", "eval_top_1", "eval_top_5",
               "learning_rate", "images_per_second")
    EMA_COLUMNS = ("eval_ema_loss", "eval_ema_top_1", "eval_ema_top_5")  # runs with --ema_decay

    def __init__(self, model_dir, chief, resumed_step=0, ema=False):
        self.path = os.path.join(model_dir, self.FILE) if chief else None
        self.columns = self.COLUMNS + (self.EMA_COLUMNS if ema else ())
        if self.path is None:
            return
        rows = []
        if resumed_step and os.path.exists(self.path):
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resumed_step]
        with open(self.path + ".tmp", "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(self.path + ".tmp", self.path)

    def write(self, step, epoch, values):
        """values: any of the columns after epoch; missing ones stay empty."""
        if self.path is None or not values:
            return
        row = {"step": step, "epoch": f"{epoch:.3f}", **{k: f"{v:.6g}" for k, v in values.items()}}
        line = io.StringIO()
        csv.DictWriter(line, self.columns).writerow(row)
        data = line.getvalue().encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            try:
                while data:
                    data = data[os.write(fd, data):]
            except OSError as e:
                with contextlib.suppress(OSError):  # e.g. EINVAL where metrics.csv is not a regular file
                    os.ftruncate(fd, end)  # no half row for pandas or a resumed run; truncating needs no space
                raise OSError(e.errno, e.strerror, self.path) from None
        finally:
            os.close(fd)


class Progress:
    """Console lines at each log step: step/total, loss, top-1, lr, images/s and ETA; and between them, when
    --log_every_steps is far apart, at each epoch's end or once `every_seconds` have passed since the last line
    (checked between calls of the train loop, so at most --steps_per_loop steps late)."""

    def __init__(self, total_steps, batch_size, start_step, out=print, every_seconds=10.0):
        self.total, self.batch_size, self.out, self.every_seconds = total_steps, batch_size, out, every_seconds
        self.start_time = self.last_time = time.perf_counter()
        self.start_step = self.last_step = start_step

    def log(self, step, metrics, lr):
        now = time.perf_counter()
        steps_per_s = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        eta = (self.total - step) / max(steps_per_s, 1e-9)
        self.out(f"step {step}/{self.total}  loss {metrics['loss']:.4f}  top-1 {metrics['top_1']:.4f}  "
                 f"lr {lr:.5f}  {steps_per_s * self.batch_size:.1f} images/s  ETA {duration(eta)}")
        return steps_per_s

    def due(self, step, steps_per_epoch):
        """Whether a line is due at `step` though no log step is: an epoch ended, or `every_seconds` passed."""
        return step % steps_per_epoch == 0 or time.perf_counter() - self.last_time >= self.every_seconds

    def images_per_second(self, step):
        return (step - self.start_step) * self.batch_size / max(self.elapsed(), 1e-9)

    def elapsed(self):
        return time.perf_counter() - self.start_time


def duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Profiler:
    """A tf.profiler trace of steps [first, last] into <model_dir>/train, for TensorBoard's Profile tab."""

    def __init__(self, model_dir, steps, out=print):
        self.logdir, self.steps, self.out, self.active = os.path.join(model_dir, "train"), steps, out, False

    def before(self, step):
        """Called with the last finished step, before the next call of the train loop."""
        if self.steps and not self.active and self.steps[0] <= step + 1 <= self.steps[1]:
            tf.profiler.experimental.start(self.logdir)
            self.active = True

    def after(self, step):
        if self.active and step >= self.steps[1]:
            tf.profiler.experimental.stop()
            self.active = False
            self.out(f"profile of steps {self.steps[0]}-{step} written to {self.logdir}/plugins/profile")
