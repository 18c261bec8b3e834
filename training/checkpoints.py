"""Checkpoints of a run: model, optimizer with its slots, step and epoch, in --model_dir.

Every worker must take part in a save under MultiWorkerMirroredStrategy; only the chief writes into model_dir,
the others into model_dir/workers/<id> (kept, so their weights can be compared with the chief's)."""
import os

import tensorflow as tf


class Checkpoints:
    def __init__(self, model_dir, keep, chief, worker, **objects):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(step=self.step, epoch=self.epoch, **objects)
        directory = model_dir if chief else os.path.join(model_dir, "workers", str(worker))
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep,
                                                  checkpoint_name="ckpt")

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore_latest(self):
        """Restores the newest checkpoint, if any; returns the step to continue from."""
        if self.latest:
            self.checkpoint.restore(self.latest).assert_existing_objects_matched()
        return int(self.step.numpy())

    def save(self, step, epoch):
        self.step.assign(step)
        self.epoch.assign(epoch)
        return self.manager.save(checkpoint_number=step)


def restore(path, **objects):
    """Restores `objects` (e.g. model=...) from one checkpoint file prefix; returns its step."""
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    tf.train.Checkpoint(step=step, **objects).restore(path).expect_partial().assert_existing_objects_matched()
    return int(step.numpy())
