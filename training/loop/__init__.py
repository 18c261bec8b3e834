"""A training run from start to end: the loop, its blocks of steps in one tf.function call, and stopping on a
signal."""
