"""SGD with momentum and the learning-rate schedules of the published recipes (piecewise or cosine, with
linear warm-up), all counted in steps."""
import dataclasses
import math

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Schedule:
    base_lr: float           # after linear batch scaling
    total_steps: int
    warmup_steps: int = 0
    kind: str = "piecewise"  # 'piecewise' | 'cosine'
    boundaries: tuple = ()   # steps where the rate is multiplied by `decay`
    decay: float = 0.1


class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) for a Schedule; a pure function of the step, so a resumed run continues on the same curve."""

    def __init__(self, schedule):
        self.schedule = schedule

    def __call__(self, step):
        s = self.schedule
        step = tf.cast(step, tf.float32)
        if s.kind == "cosine":
            span = max(s.total_steps - s.warmup_steps, 1)
            progress = tf.clip_by_value((step - s.warmup_steps) / span, 0.0, 1.0)
            lr = 0.5 * s.base_lr * (1.0 + tf.cos(math.pi * progress))
        else:
            passed = tf.reduce_sum(tf.cast(step >= tf.constant(s.boundaries or [math.inf], tf.float32), tf.float32))
            lr = s.base_lr * tf.pow(s.decay, passed)
        if s.warmup_steps:
            lr = tf.minimum(lr, s.base_lr * (step + 1.0) / s.warmup_steps)
        return lr

    def get_config(self):
        return dataclasses.asdict(self.schedule)


def create(schedule, momentum, nesterov=False, loss_scaling=False):
    """SGD + momentum over `schedule`; wrapped for dynamic loss scaling when training in float16."""
    optimizer = keras.optimizers.SGD(LearningRate(schedule), momentum=momentum, nesterov=nesterov)
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaling else optimizer
