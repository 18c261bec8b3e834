"""The networks: `create_model` builds any entry of the MODELS table (ResNet V2, AlexNet, VGG-16, Inception V3);
`describe` and `flops_per_image` summarize them."""
from console import cuda_noise

cuda_noise.start_if_module("model")  # before this package imports TensorFlow
from model.resnet_v2 import (Spec, build, create, pointwise_kernel, resolve, spatial_kernel,  # noqa: E402
                             standalone_kernel, weight_decay_variables)
from model.summary import describe, flops_per_image, parameter_counts, stage_outputs  # noqa: E402
from model.zoo import MODELS, Entry, ZooSpec, check_model, create_model  # noqa: E402

__all__ = ["Spec", "build", "create", "pointwise_kernel", "resolve", "spatial_kernel", "standalone_kernel",
           "weight_decay_variables",
           "describe", "flops_per_image", "parameter_counts", "stage_outputs",
           "MODELS", "Entry", "ZooSpec", "check_model", "create_model"]
