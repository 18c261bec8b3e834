"""What eval.py writes beside metrics.json: the confusion matrix (CSV, PNG and a TensorBoard image) and the
per-class precision / recall table. Rows of the confusion matrix are true classes, columns predicted ones."""
import csv
import io
import os

import numpy as np
import tensorflow as tf

CONFUSION_CSV, CONFUSION_PNG, PER_CLASS_CSV = "confusion_matrix.csv", "confusion_matrix.png", "per_class.csv"
# Figure size in inches: a margin for the axis labels plus a fixed cell per class, capped for 1000-class sets.
# Class names are written on the axes up to NAMED_CLASSES, counts in the cells up to ANNOTATED_CLASSES.
MARGIN_INCHES, CELL_INCHES, MAX_INCHES, DPI = 2.5, 0.4, 60.0, 100
NAMED_CLASSES, ANNOTATED_CLASSES = 100, 30


def per_class(confusion, class_names):
    """[{'class', 'precision', 'recall', 'f1', 'support'}] per class; 0 where a ratio has nothing to divide."""
    confusion = np.asarray(confusion, np.float64)
    correct, predicted, actual = np.diag(confusion), confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, actual, out=np.zeros_like(correct), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(correct), where=both > 0)
    return [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for name, p, r, f, n in zip(class_names, precision, recall, f1, actual)]


def figure_inches(num_classes):
    return min(MARGIN_INCHES + CELL_INCHES * num_classes, MAX_INCHES)


def confusion_png(confusion, class_names, title):
    """PNG bytes: cells coloured by the row's fraction (recall per true class, readable when classes are
    imbalanced), annotated with counts for small class sets."""
    import matplotlib
    matplotlib.use("Agg")  # no display: render to memory
    from matplotlib import pyplot as plt

    confusion = np.asarray(confusion)
    n = len(class_names)
    rows = confusion.sum(axis=1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    size = figure_inches(n)
    fig, ax = plt.subplots(figsize=(size, size), dpi=DPI, layout="constrained")
    ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    if n <= NAMED_CLASSES:
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
    if n <= ANNOTATED_CLASSES:
        for (i, j), count in np.ndenumerate(confusion):
            ax.text(j, i, int(count), ha="center", va="center", fontsize=8,
                    color="white" if fraction[i, j] > 0.5 else "black")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def write(eval_dir, metrics, class_names, writer=None):
    """Writes the three files into eval_dir and, given a summary writer, the matrix image at the metrics' step.
    Returns the per-class rows."""
    os.makedirs(eval_dir, exist_ok=True)
    confusion = np.asarray(metrics["confusion_matrix"]).astype(np.int64)
    _atomic_csv(os.path.join(eval_dir, CONFUSION_CSV),
                [["true \\ predicted", *class_names]] + [[name, *row] for name, row in zip(class_names, confusion)])
    rows = per_class(confusion, class_names)
    _atomic_csv(os.path.join(eval_dir, PER_CLASS_CSV), [list(rows[0])] + [
        [r["class"], f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", r["support"]] for r in rows])
    png = confusion_png(confusion, class_names, f"step {metrics['step']}: top-1 {metrics['top_1']:.4f}")
    with open(os.path.join(eval_dir, CONFUSION_PNG), "wb") as f:
        f.write(png)
    if writer is not None:
        with writer.as_default(step=metrics["step"]):
            tf.summary.image("confusion_matrix", tf.io.decode_png(png, channels=3)[None], max_outputs=1)
        writer.flush()
    return rows


def table(rows):
    """The per-class rows as aligned console lines."""
    width = max(len("class"), *(len(r["class"]) for r in rows))
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    lines += [f"{r['class']:<{width}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:5.4f}  {r['support']:7d}"
              for r in rows]
    return lines


def _atomic_csv(path, rows):
    with open(path + ".tmp", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.replace(path + ".tmp", path)
