"""Evaluation over a whole split: every example counted exactly once, whatever the replicas and batch size."""
import numpy as np
import tensorflow as tf

import data
from training.compute import step as steps


class Evaluator:
    """Runs the eval step over the distributed eval split inside one tf.function and sums the replicas."""

    def __init__(self, strategy, model, info, batch_size, data_dir=None, tta="none", split="test"):
        self.strategy, self.split = strategy, split
        self.dataset = strategy.distribute_datasets_from_function(
            lambda ctx: data.make_eval_dataset(info, data_dir=data_dir, global_batch_size=batch_size,
                                               input_context=ctx, margin=tta == "flip+crops", split=split))
        eval_step = steps.make_eval_step(model, info.num_classes, tta, info.image_size)

        zero = tf.constant(0.0)
        initial = {"cross_entropy": zero, "correct": zero, "correct_top5": zero, "examples": zero,
                   "confusion": tf.zeros([info.num_classes, info.num_classes])}

        @tf.function
        def evaluate(dataset):
            totals = initial
            for batch in dataset:
                sums = strategy.run(eval_step, args=batch)
                totals = {k: totals[k] + strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                          for k, v in sums.items()}
            return totals

        self._evaluate = evaluate

    def __call__(self):
        """{'top_1', 'top_5', 'loss', 'num_examples', 'per_class_accuracy', 'confusion_matrix'} over the full
        split; the confusion matrix is an int64 array [true class, predicted class]."""
        sums = {k: v.numpy() for k, v in self._evaluate(self.dataset).items()}
        n = float(sums["examples"])
        confusion = np.rint(sums["confusion"]).astype(np.int64)  # float32 counts are exact below 2**24
        per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
        return {"top_1": float(sums["correct"] / n), "top_5": float(sums["correct_top5"] / n),
                "loss": float(sums["cross_entropy"] / n), "num_examples": int(round(n)),
                "per_class_accuracy": [float(a) for a in per_class], "confusion_matrix": confusion}
