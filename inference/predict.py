"""predict.py's library side: image files and folders -> the top-k classes of each image, as rows for a CSV.
A file that can't be read or decoded becomes a row with an error instead of stopping the run."""
import csv
import os
import re

import numpy as np
import tensorflow as tf

from data.folder import IMAGE_EXTENSIONS

BATCH_SIZE = 32  # images per forward pass


def list_images(paths):
    """Files in the order given; folders contribute their image files (by extension), recursively, sorted.
    Paths that don't exist are kept, to be reported as errors."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        else:
            found.append(path)
    return found


def predict(classifier, paths, batch_size=BATCH_SIZE):
    """Yields {'path', 'classes': [(name, probability)] best first, 'error'} per path, in order."""
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        encoded, errors = [], {}
        for path in chunk:
            try:
                encoded.append(_read_checked(path))
            except (OSError, tf.errors.OpError) as e:
                errors[path] = _one_line(e)
        good = [p for p in chunk if p not in errors]
        results = _classify(classifier, good, encoded, errors) if good else {}
        for path in chunk:
            yield {"path": path, "classes": results.get(path, []), "error": errors.get(path, "")}


def _classify(classifier, paths, encoded, errors):
    """{path: [(name, probability)]} for one batch; if the batch fails (e.g. one extreme image runs out of
    memory), each image is tried alone and the failing ones are recorded in `errors`."""
    try:
        outputs = classifier.classify_bytes(tf.constant(encoded))
    except tf.errors.OpError as e:
        if len(paths) == 1:
            errors[paths[0]] = _one_line(e)
            return {}
        results = {}
        for path, one in zip(paths, encoded):
            results.update(_classify(classifier, [path], [one], errors))
        return results
    names = np.asarray(outputs["top_k_class_names"])  # tensors (the run's SavedModel classifier) or arrays (exports)
    probabilities = np.asarray(outputs["top_k_probabilities"])
    return {path: list(zip([n.decode() for n in names[i]], probabilities[i].tolist()))
            for i, path in enumerate(paths)}


def _read_checked(path):
    """The file's bytes, after checking that they decode (so one bad file can't fail a whole batch)."""
    with open(path, "rb") as f:
        encoded = f.read()
    tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return encoded


def _one_line(error):
    if not isinstance(error, tf.errors.OpError):
        return error.strerror or str(error)
    # "{{function_node __wrapped__DecodeImage_device_/...}} Unknown image file format. ... [Op:DecodeImage]"
    message = re.sub(r"\{\{function_node [^}]*\}\}", "", error.message)
    return message.split(" [Op:")[0].strip().splitlines()[0]


def header(top_k):
    return ["path"] + [f"{kind}_{i}" for i in range(1, top_k + 1) for kind in ("label", "prob")] + ["error"]


def csv_row(row, top_k):
    cells = [row["path"]]
    for i in range(top_k):
        name, probability = row["classes"][i] if i < len(row["classes"]) else ("", None)
        cells += [name, "" if probability is None else f"{probability:.6f}"]
    return cells + [row["error"]]


def write_csv(path, rows, top_k):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header(top_k))
        writer.writerows(csv_row(r, top_k) for r in rows)


def console_line(row):
    if row["error"]:
        return f"{row['path']}: error: {row['error']}"
    return f"{row['path']}: " + ", ".join(f"{name} {p:.4f}" for name, p in row["classes"])
