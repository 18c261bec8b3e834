"""The network a run's config describes: one place turns a Config (or a run's saved config.json) into a model."""
import collections
import contextlib
import dataclasses

import tensorflow as tf
# TF 2's freezing (what TFLite's converter does to a concrete function); tf.compat.v1's works on v1 sessions only.
from tensorflow.python.framework import convert_to_constants

import model as resnet
from training.compute import kernels, precision

# The head every model of the family names "logits": fine-tuning replaces it, freezing keeps everything else.
HEAD = "logits"


def create(config, num_classes, dtype=None, portable=False):
    """(keras.Model, spec) for a training Config or the dict of a saved config.json, computing in `dtype` (default:
    the run's own, so that eval.py reproduces the numbers the run's evaluations logged) with the kernels.py tables'
    choices for the devices the run computes on and that dtype; portable: TensorFlow's own kernels where those
    differ in inference (fused batch norm, direct convolutions), for formats that run on other machines and the
    converters that know them."""
    fields = _fields(config)
    hardware, dtype = target(fields, dtype)
    with precision.building(dtype), building_kernels(hardware, dtype, portable):
        return resnet.create_model(fields["model"], num_classes, fields["image_size"], depth=fields["depth"],
                                   unit=fields["unit"], arch=fields["arch"], width=fields["width"],
                                   sync_bn=fields["sync_bn"], bn_momentum=fields["bn_momentum"],
                                   include_top=fields.get("include_top", True))


def target(config, dtype=None):
    """(precision.Hardware, dtype) a run's network computes on and in: the devices of its config (a Config or a
    config.json's dict) on this machine, and `dtype` or the run's own."""
    fields = _fields(config)
    return precision.detect(fields.get("num_gpus"), tpu=fields.get("strategy") == "tpu"), dtype or fields["dtype"]


def _fields(config):
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config


Kernels = collections.namedtuple("Kernels", "norm pointwise spatial")


@contextlib.contextmanager
def building_kernels(hardware, dtype, portable=False):
    """Networks built inside compute with the kernels.py tables' choices for `hardware` and `dtype` (portable:
    TensorFlow's own in inference, as create's); yields them, a Kernels."""
    chosen = Kernels(norm="fused" if portable else kernels.norm_kernel(hardware, dtype)[0],
                     pointwise=kernels.pointwise_kernel(hardware, dtype)[0],  # training only
                     spatial="conv" if portable else kernels.spatial_kernel(hardware, dtype)[0])
    with (resnet.standalone_kernel(chosen.norm), resnet.pointwise_kernel(chosen.pointwise),
          resnet.spatial_kernel(chosen.spatial)):
        yield chosen


def for_inference(net, hardware, dtype, replicas=1):
    """`net` as inference computes with it on `hardware` in `dtype` (kernels.WEIGHTS_RULES): a Frozen copy of the
    weights it has now, or `net` itself (also across replicas: a frozen graph is one device's). Take it again after
    the weights change."""
    kind, _ = kernels.inference_weights(hardware, dtype)
    return Frozen(net) if kind == "constants" and replicas == 1 else net


class Frozen:
    """net(images, training=False) with the weights it had when this was made as constants of the graph. oneDNN's
    convolutions then ran faster than on variables on a busy host (a ResNet-152 forward took 0.85-0.94x the time
    with oneDNN held to AVX2, 0.94-0.98x unheld) and as fast on a quiet one (docs/performance.md), with bitwise the
    same logits. Inference only."""

    def __init__(self, net):
        spec = tf.TensorSpec([None, *net.inputs[0].shape[1:]], net.inputs[0].dtype)
        live = tf.function(lambda images: net(images, training=False), autograph=False).get_concrete_function(spec)
        self._function = convert_to_constants.convert_variables_to_constants_v2(live)
        self._structure = live.structured_outputs

    def __call__(self, images, training=False):
        if training:
            raise ValueError("a frozen network only infers: call it with training=False")
        return tf.nest.pack_sequence_as(self._structure, self._function(images))


def freeze_backbone(net):
    """Makes every layer but the head non-trainable. Frozen batch norm normalizes with its moving statistics and
    leaves them as they are (Keras' transfer-learning convention)."""
    for layer in net.layers:
        layer.trainable = layer.name == HEAD
