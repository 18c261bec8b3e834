"""An exported file run by its own runtime: LiteRT's interpreter for TFLite, onnxruntime's CPU provider for ONNX,
TensorFlow for the SavedModel. Each runner takes what its format takes and returns float32 probabilities."""
import os
import statistics
import time

import numpy as np

from inference import native_noise


def cpu_threads():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class TFLite:
    """A .tflite file on LiteRT's interpreter; any batch size (the input is resized to it)."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter
        with native_noise.dropped():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            self.interpreter = Interpreter(model_path=path, num_threads=cpu_threads())
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.dtype = self.input["dtype"]  # float32, or uint8 for int8
        self.batch = None

    def __call__(self, pixels):
        """pixels: float32 [n, S, S, 3] in 0-255 (rounded to uint8 for an int8 model)."""
        if self.dtype != np.float32:
            scale, zero = self.input["quantization"]
            info = np.iinfo(self.dtype)
            pixels = np.clip(np.round(pixels / scale + zero), info.min, info.max).astype(self.dtype)
        if self.batch != len(pixels):
            self.interpreter.resize_tensor_input(self.input["index"], list(pixels.shape))
            with native_noise.dropped():  # the delegate is applied at the first allocation
                self.interpreter.allocate_tensors()
            self.batch = len(pixels)
        self.interpreter.set_tensor(self.input["index"], pixels)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()


class Onnx:
    """A .onnx file on onnxruntime's CPU execution provider."""

    def __init__(self, path):
        import onnxruntime
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def __call__(self, pixels):
        return self.session.run(None, {self.name: pixels.astype(np.float32)})[0]


class SavedModel:
    """export.py's SavedModel through its `images` signature (uint8 images; it decodes nothing and preprocesses
    them itself), or `serving_default` for encoded bytes."""

    def __init__(self, path):
        import tensorflow as tf
        self.tf = tf
        self.loaded = tf.saved_model.load(path)
        self.images = self.loaded.signatures["images"]
        self.encoded = self.loaded.signatures["serving_default"]

    def __call__(self, pixels):
        """pixels: images of the model's input size (rounded to uint8); the signature's preprocessing then keeps
        small images as they are and crops large ones again."""
        images = self.tf.constant(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
        return self.images(images=images)["probabilities"].numpy()

    def raw(self, raw, small_images):
        """Probabilities of stored images as a dataset holds them: uint8 arrays (small) or encoded bytes."""
        if small_images:
            return self.images(images=self.tf.constant(raw))["probabilities"].numpy()
        return self.encoded(image_bytes=self.tf.constant(raw))["probabilities"].numpy()


RUNNERS = {"saved_model": SavedModel, "tflite": TFLite, "tflite_fp16": TFLite, "tflite_int8": TFLite,
           "onnx": Onnx}


def open_runner(fmt, path):
    """The runner of format `fmt` (a name of inference.formats.FORMATS) for the file or directory `path`."""
    return RUNNERS[fmt](path)


def timing(runner, pixels, latency_runs=50, throughput_runs=5, throughput_batch=32):
    """(median seconds per image at batch 1 over latency_runs, images/s at batch throughput_batch: the median of
    throughput_runs), after a warm-up call at each batch size."""
    one = pixels[:1]
    batch = np.concatenate([pixels] * (throughput_batch // len(pixels) + 1))[:throughput_batch]
    runner(one)
    latencies = []
    for _ in range(latency_runs):
        start = time.perf_counter()
        runner(one)
        latencies.append(time.perf_counter() - start)
    runner(batch)
    rates = []
    for _ in range(throughput_runs):
        start = time.perf_counter()
        runner(batch)
        rates.append(throughput_batch / (time.perf_counter() - start))
    return statistics.median(latencies), statistics.median(rates)
