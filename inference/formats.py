"""The export formats besides the SavedModel: the trained network with its normalization inside (float32 pixels
0-255 in, probabilities out) converted to TFLite (float32, float16 weights, full-integer int8) and ONNX.

Each format takes [n, S, S, 3] RGB at the run's eval input size S (n: any batch), after the decode, resize and crop
of the run's eval transform (model_card.json states it)."""
import dataclasses
import importlib.util

import tensorflow as tf

from inference import native_noise

ONNX_OPSET = 17
CARD = "model_card.json"   # beside the files: how to feed them, their sha256s and verification


@dataclasses.dataclass(frozen=True)
class Format:
    name: str
    file: str               # in the export directory; "" for the SavedModel, which is the directory itself
    tools: tuple            # Python packages it needs to be written and run
    description: str


FORMATS = {f.name: f for f in (
    Format("saved_model", "", ("tensorflow",), "SavedModel: encoded images or uint8 tensors of any size in, "
           "the run's preprocessing inside"),
    Format("tflite", "model.tflite", ("ai_edge_litert",), "TFLite (LiteRT), float32"),
    Format("tflite_fp16", "model_fp16.tflite", ("ai_edge_litert",), "TFLite (LiteRT), float16 weights"),
    Format("tflite_int8", "model_int8.tflite", ("ai_edge_litert",), "TFLite (LiteRT), full-integer int8, uint8 "
           "pixels in, float32 probabilities out"),
    Format("onnx", "model.onnx", ("tf2onnx", "onnx", "onnxruntime"), f"ONNX (opset {ONNX_OPSET}), float32, for "
           "onnxruntime"),
)}


def parse(names):
    """The formats of --formats (a list; "all" is every one), in table order; ValueError naming an unknown one."""
    names = list(FORMATS) if list(names) == ["all"] else list(names)
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(f"--formats takes {', '.join(FORMATS)} or all, not {','.join(unknown) or 'nothing'}")
    return [FORMATS[n] for n in FORMATS if n in names]


def missing_tools(formats):
    """The packages that the formats need and this Python lacks, each once."""
    needed = dict.fromkeys(tool for f in formats for tool in f.tools)
    return [tool for tool in needed if not _installed(tool)]


def _installed(package):
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a broken or blocked package
        return False


class PixelModel(tf.Module):
    """The network behind one fixed signature: float32 pixels [n, S, S, 3] in 0-255 -> float32 probabilities.
    broken (a testing aid, export.py --debug_break_format): leaves the normalization out, the mistake the
    verification exists to catch."""

    def __init__(self, net, info, broken=False):
        super().__init__(name="pixel_model")
        self.net, self.mean, self.std, self.broken = net, info.mean, info.std, broken
        # Keras 3 variables are not tf.Module-tracked: without these the converters would not freeze the weights.
        self.frozen_variables = [v.value for v in net.variables]
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([None, info.image_size, info.image_size, 3], tf.float32, name="pixels")])

    def _serve(self, pixels):
        # Constants made inside the trace, so ONNX gets them as initializers, not as extra inputs.
        inputs = pixels if self.broken else (pixels - tf.constant(self.mean)) / tf.constant(self.std)
        return {"probabilities": tf.nn.softmax(tf.cast(self.net(inputs, training=False), tf.float32))}


def convert(pixel_model, fmt, calibration=None):
    """The bytes of `fmt` (a Format other than the SavedModel). calibration: float32 pixel batches [1, S, S, 3],
    for tflite_int8."""
    if fmt.name == "onnx":
        import onnx
        import tf2onnx
        proto, _ = tf2onnx.convert.from_function(pixel_model.serve, input_signature=(
            tf.TensorSpec([None, *pixel_model.serve.input_signature[0].shape[1:]], tf.float32, name="pixels"),),
            opset=ONNX_OPSET)
        onnx.checker.check_model(proto)
        return proto.SerializeToString()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([pixel_model.serve.get_concrete_function()],
                                                                 pixel_model)
    if fmt.name == "tflite_fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt.name == "tflite_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([batch] for batch in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    with native_noise.dropped():  # int8's "fully_quantize: 0, inference_type: 6, ..." line
        return converter.convert()
