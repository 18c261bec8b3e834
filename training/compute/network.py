"""The network a run's config describes: one place turns a Config (or a run's saved config.json) into a model."""
import contextlib
import dataclasses

import model as resnet
from training.compute import kernels, precision

# The head every model of the family names "logits": fine-tuning replaces it, freezing keeps everything else.
HEAD = "logits"


def create(config, num_classes, dtype=None, norm_kernel=None):
    """(keras.Model, spec) for a training Config or the dict of a saved config.json, computing in `dtype` (default:
    the run's own, so that eval.py reproduces the numbers the run's evaluations logged). norm_kernel: how its
    standalone batch norms infer (model.resnet_v2.BatchNormalization); default, and for its 1x1 convolutions in
    training always: the tables' choice for the devices the run computes on and its dtype (kernels.py)."""
    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    dtype = dtype or fields["dtype"]
    hardware = precision.detect(fields.get("num_gpus"), tpu=fields.get("strategy") == "tpu")
    with precision.building(dtype), building_kernels(hardware, dtype, norm_kernel):
        return resnet.create_model(fields["model"], num_classes, fields["image_size"], depth=fields["depth"],
                                   unit=fields["unit"], arch=fields["arch"], width=fields["width"],
                                   sync_bn=fields["sync_bn"], bn_momentum=fields["bn_momentum"],
                                   include_top=fields.get("include_top", True))


@contextlib.contextmanager
def building_kernels(hardware, dtype, norm_kernel=None):
    """Networks built inside compute with the kernels.py tables' choices for `hardware` and `dtype` (norm_kernel:
    the standalone batch norms' instead); yields (norm kernel, 1x1 convolution kernel)."""
    norm_kernel = norm_kernel or kernels.norm_kernel(hardware, dtype)[0]
    pointwise_kernel, _ = kernels.pointwise_kernel(hardware, dtype)
    with resnet.standalone_kernel(norm_kernel), resnet.pointwise_kernel(pointwise_kernel):
        yield norm_kernel, pointwise_kernel


def freeze_backbone(net):
    """Makes every layer but the head non-trainable. Frozen batch norm normalizes with its moving statistics and
    leaves them as they are (Keras' transfer-learning convention)."""
    for layer in net.layers:
        layer.trainable = layer.name == HEAD
