"""The ResNet V2 model family: `create` builds a network, `describe` and `flops_per_image` summarize it."""
from model.resnet_v2 import Spec, build, create, resolve, weight_decay_variables
from model.summary import describe, flops_per_image, parameter_counts, stage_outputs

__all__ = ["Spec", "build", "create", "resolve", "weight_decay_variables",
           "describe", "flops_per_image", "parameter_counts", "stage_outputs"]
