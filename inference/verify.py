"""Every exported format checked against the SavedModel on the run's own test images, each run by its own
runtime, and timed: the table export.py prints and writes into model_card.json."""
import json
import math
import os

import numpy as np

import data
from inference import formats as formats_lib, runtimes

VERIFY_CAP = 2000  # test images at most, by default
# format: [(metric, "min" | "max", bound)]; a format outside one of its bounds fails the export.
THRESHOLDS = {
    "tflite": [("agreement", "min", 0.999), ("max_abs_dp", "max", 1e-4)],
    "onnx": [("agreement", "min", 0.999), ("max_abs_dp", "max", 1e-4)],
    "tflite_fp16": [("agreement", "min", 0.99)],
    "tflite_int8": [("top_1_drop", "max", 0.01)],  # top-1 within 1.0 point of the SavedModel's
}
COLUMNS = ("format", "MB", "top-1", "agreement", "max |dp|", "ms / image (batch 1)", "images/s (batch 32)")


class VerificationError(Exception):
    """A format missed a threshold; the message names the format, its number and the threshold."""


def verify(export_dir, formats, info, data_dir, examples, reference_dir):
    """Rows {format: {...}} of the formats written in export_dir (inference.formats.Format), on `examples` test
    images, against the SavedModel in reference_dir. Raises VerificationError for a threshold missed, after
    measuring every format."""
    reference = runtimes.SavedModel(reference_dir)
    runners = {f.name: runtimes.open_runner(f.name, os.path.join(export_dir, f.file)) for f in formats
               if f.name != "saved_model"}
    counts = {name: {"correct": 0, "agree": 0, "max_abs_dp": 0.0} for name in ["saved_model", *runners]}
    seen, first = 0, None
    for raw, pixels, labels in data.make_pixel_dataset(info, "test", data_dir=data_dir,
                                                       limit=examples).batch(64):
        pixels, labels = pixels.numpy(), labels.numpy()
        first = pixels if first is None else first
        expected = reference.raw(raw, info.small_images)
        seen += len(labels)
        for name, runner in [("saved_model", None), *runners.items()]:
            probabilities = expected if runner is None else runner(pixels)
            c = counts[name]
            c["correct"] += int((probabilities.argmax(1) == labels).sum())
            c["agree"] += int((probabilities.argmax(1) == expected.argmax(1)).sum())
            c["max_abs_dp"] = max(c["max_abs_dp"], float(np.abs(probabilities - expected).max()))
    rows = {}
    for fmt in formats:
        c = counts[fmt.name]
        latency, rate = runtimes.timing(reference if fmt.name == "saved_model" else runners[fmt.name], first)
        rows[fmt.name] = {"file": fmt.file or ".", "bytes": size(os.path.join(export_dir, fmt.file)),
                          "examples": seen, "top_1": c["correct"] / seen, "agreement": c["agree"] / seen,
                          "max_abs_dp": c["max_abs_dp"], "latency_ms": 1000 * latency, "images_per_second": rate}
        rows[fmt.name]["top_1_drop"] = counts["saved_model"]["correct"] / seen - rows[fmt.name]["top_1"]
    return rows


def check(rows):
    """Raises VerificationError naming the first format, number and threshold missed."""
    for name, row in rows.items():
        for metric, kind, bound in THRESHOLDS.get(name, ()):
            value = row[metric]
            if (kind == "min" and value < bound) or (kind == "max" and value > bound):
                raise VerificationError(
                    f"{name} failed verification on {row['examples']} test images: {metric} {value:.6g} is "
                    f"{'below' if kind == 'min' else 'above'} its threshold {bound:g}; nothing was written")


def size(path):
    """Bytes of a file, or of every file under a directory (a SavedModel)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files
               if f != "model_card.json" and not f.endswith((".tflite", ".onnx")))


def table(rows):
    """The rows as a text table, one line per format."""
    def shown(value, text):  # an export written unverified has no accuracy columns
        return "-" if math.isnan(value) else text

    lines = [" | ".join(COLUMNS)]
    for name, r in rows.items():
        lines.append(" | ".join((name, f"{r['bytes'] / 2**20:.2f}", shown(r["top_1"], f"{r['top_1']:.4f}"),
                                 shown(r["agreement"], f"{100 * r['agreement']:.2f} %"),
                                 shown(r["max_abs_dp"], f"{r['max_abs_dp']:.2e}"), f"{r['latency_ms']:.2f}",
                                 f"{r['images_per_second']:.0f}")))
    return lines


def retime(export_dir):
    """The table of an existing export, each format timed again here on random pixels (its accuracy columns are
    model_card.json's, from when it was written). Raises VerificationError for a directory that is no export."""
    try:
        with open(os.path.join(export_dir, formats_lib.CARD)) as f:
            card = json.load(f)
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or e
        raise VerificationError(f"{export_dir} has no readable {formats_lib.CARD} ({reason}): give an export.py "
                                "--export_dir") from None
    size = card["input"]["image_size"]
    pixels = np.random.default_rng(0).uniform(0, 255, (32, size, size, 3)).astype(np.float32)
    recorded = card["verification"] if isinstance(card["verification"], dict) else {}
    rows = {}
    for name, entry in card["files"].items():
        runner = runtimes.open_runner(name, os.path.join(export_dir, entry["file"]))
        latency, rate = runtimes.timing(runner, pixels)
        nan = float("nan")
        rows[name] = {**{"top_1": nan, "agreement": nan, "max_abs_dp": nan}, **recorded.get(name, {}),
                      "bytes": entry["bytes"], "latency_ms": 1000 * latency, "images_per_second": rate}
    return table(rows)
