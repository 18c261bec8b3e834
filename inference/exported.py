"""An exported model as predict.py's classifier: a .tflite or .onnx file fed as its model_card.json says (the
decode, resize and crop of the run's eval transform), or an export directory's SavedModel, which preprocesses
itself. A user checks the file they deploy on their own photos with the tool they check the run with."""
import json
import os

import numpy as np
import tensorflow as tf

from data import preprocessing
from inference import formats, runtimes

KINDS = {".tflite": "tflite", ".onnx": "onnx"}


class ExportError(Exception):
    """An export that can't be loaded, with a one-line reason."""


class ExportedClassifier:
    """classify_bytes(encoded [n]) -> the SavedModel's outputs (top_k_class_names, top_k_probabilities, ...)."""

    def __init__(self, path, top_k=5):
        directory = path if os.path.isdir(path) else os.path.dirname(path)
        card_path = os.path.join(directory, formats.CARD)
        try:
            with open(card_path) as f:
                self.card = json.load(f)
        except (OSError, ValueError) as e:
            raise ExportError(f"{card_path} is missing or unreadable ({getattr(e, 'strerror', None) or e}): is "
                              f"{path} an export.py --export_dir?") from None
        self.class_names = np.array(self.card["classes"])
        self.top_k = min(top_k, len(self.class_names))
        self.size, self.small = self.card["input"]["image_size"], self.card["input"]["small_images"]
        kind = "saved_model" if os.path.isdir(path) else KINDS.get(os.path.splitext(path)[1])
        if kind is None or (kind == "saved_model" and not os.path.exists(os.path.join(path, "saved_model.pb"))):
            raise ExportError(f"--model={path}: give an export directory holding a SavedModel, or a .tflite or .onnx "
                              "file of one")
        self.kind = kind  # any .tflite (float32, float16, int8) runs on LiteRT the same way
        self.runner = runtimes.open_runner(kind, path)
        self.description = f"{path} ({kind})"

    def classify_bytes(self, image_bytes):
        encoded = image_bytes.numpy() if hasattr(image_bytes, "numpy") else image_bytes
        if self.kind == "saved_model":
            probabilities = self.runner.encoded(image_bytes=tf.constant(encoded))["probabilities"].numpy()
        else:
            pixels = np.stack([preprocessing.eval_pixels(preprocessing.decode(b), self.size, self.small).numpy()
                               for b in encoded])
            probabilities = self.runner(pixels)
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :self.top_k]
        return {"probabilities": probabilities, "top_k_indices": top,
                "top_k_probabilities": np.take_along_axis(probabilities, top, 1),
                "top_k_class_names": np.char.encode(self.class_names[top].astype(str))}
