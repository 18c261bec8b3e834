"""Blocks of train steps, each up to --steps_per_loop steps inside one tf.function call that a stop request
ends after the step in flight, and where a block must end: the next log, checkpoint, eval or the end."""
import time

import tensorflow as tf

SUM_KEYS = ("cross_entropy", "l2", "correct", "examples", "nonfinite")


def make_train_loop(strategy, train_step, xla=False, ema=None, stop_flag=None, optimizer=None):
    """loop(iterator, step, n) runs steps step+1 .. step+n inside one tf.function call, each followed by the EMA's
    update when there is one, and ends early, after the step in flight, once `stop_flag` (preemption.Preemption's)
    is set on any worker; the flag is read once `optimizer` has applied the step.

    Returns the steps it ran, the replicas' summed step outputs, the first step whose loss was not finite (-1:
    none), and the replicas' summed stop flags (over all workers), so that all of them stop after the same step."""
    # XLA compiles the per-replica step; compiling the whole strategy.run fails.
    replica_step = tf.function(train_step, jit_compile=True) if xla else train_step

    def step_and_vote(images, labels, step):
        sums = replica_step(images, labels, step)
        if stop_flag is None:
            flag = tf.zeros([2])
        else:
            # Read once the optimizer has counted this step (the update is done), so that a signal that arrives
            # during a step stops the loop right after it. One vector per step: a single all-reduce.
            with tf.control_dependencies([tf.convert_to_tensor(optimizer.iterations)]):
                flag = tf.identity(stop_flag.read_value())
        return tf.concat([tf.stack([sums[k] for k in SUM_KEYS]), flag], axis=0)

    @tf.function
    def loop(iterator, first_step, num_steps):
        totals = tf.zeros([len(SUM_KEYS)])
        votes = tf.zeros([2])
        first_bad = tf.constant(-1, tf.int64)
        ran = tf.constant(0, tf.int64)
        for i in tf.range(tf.cast(num_steps, tf.int64)):
            step = first_step + i + 1
            images, labels = next(iterator)
            packed = strategy.run(step_and_vote, args=(images, labels, step))
            if ema is not None:
                ema.update(step)
            packed = strategy.reduce(tf.distribute.ReduceOp.SUM, packed, axis=None)
            sums, votes = packed[:len(SUM_KEYS)], packed[len(SUM_KEYS):]
            first_bad = tf.where((first_bad < 0) & (sums[SUM_KEYS.index("nonfinite")] > 0), step, first_bad)
            totals += sums
            ran = i + 1
            if tf.reduce_sum(votes) > 0:
                break
        return ran, dict(zip(SUM_KEYS, tf.unstack(totals))), first_bad, votes
    return loop


class Window:
    """Summed step outputs since the last log line."""

    def __init__(self):
        self.sums, self.steps = {}, 0

    def add(self, sums, num_steps):
        self.sums = {k: self.sums.get(k, 0.0) + float(v) for k, v in sums.items()}
        self.steps += num_steps

    def take(self):
        metrics = self.peek()
        self.sums, self.steps = {}, 0
        return metrics

    def peek(self):
        """The window's averages so far, kept for the next take()."""
        sums, num_steps = self.sums, self.steps
        cross_entropy = sums["cross_entropy"] / max(sums["examples"], 1.0)
        l2 = sums["l2"] / num_steps
        return {"loss": cross_entropy + l2, "cross_entropy": cross_entropy, "l2": l2,
                "top_1": sums["correct"] / max(sums["examples"], 1.0), "skipped_steps": sums["nonfinite"]}


class Blocks:
    """Calls of the train loop, each up to n steps in one tf.function call; remembers the seconds per step of the
    last call (the first call's include the compilation)."""

    def __init__(self, train_loop):
        self.train_loop, self.calls, self.seconds_per_step = train_loop, 0, None

    def __call__(self, iterator, step, n):
        """(steps run, summed step outputs, first non-finite step or -1, summed stop flags as numpy)."""
        started = time.perf_counter()
        ran, sums, first_bad, votes = self.train_loop(iterator, tf.constant(step, tf.int64), tf.constant(n))
        ran = int(ran)
        self.calls += 1
        self.seconds_per_step = (time.perf_counter() - started) / ran
        return ran, sums, int(first_bad), votes.numpy()


def steps_until_event(step, config):
    """Steps to the next log, checkpoint (epoch end), eval or the end, whichever comes first."""
    periods = (config.log_every_steps, config.steps_per_epoch, config.eval_every_steps)
    # A profile starts and ends at loop-call boundaries, so its steps are exactly the ones asked for.
    marks = [m - step for m in (config.profile_steps[0] - 1, config.profile_steps[1]) if m > step] \
        if config.profile_steps else []
    return min([every - step % every for every in periods] + [config.train_steps - step] + marks)
