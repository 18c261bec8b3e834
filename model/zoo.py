"""The model table: every network `train.py --model`, `benchmark.py` and `python -m model` can build, its default
and minimum image size, its small-image behaviour, and one entry point (`create_model`) for all of them.

Small images (<= 64 px, what the data pipeline calls small images):
  resnet_v2     a 3x3 stride-1 stem without max-pool (ImageNet depths) or the CIFAR family (model/resnet_v2.py).
  alexnet(_lrn) a small-image variant: conv1 5x5 stride 1, fc6/fc7 of 512 (model/alexnet.py).
  vgg16         the CIFAR VGG-16: the same convolutions, fc6/fc7 of 512 (model/vgg.py).
  inception_v3  refused: it needs at least 75 px (model/inception_v3.py).
Without the top (include_top=False, the chapter's benchmark protocol) AlexNet ends at pool5, VGG-16 at
block5_pool and Inception V3 at mixed10, the last feature map before any classifier layer; a ResNet ends at its
pooled features (the backbone of an imported _notop file).
"""
import dataclasses

from model import alexnet, inception_v3, resnet_v2, vgg

SMALL_IMAGE_MAX = resnet_v2.SMALL_IMAGE_MAX  # 64 px, the data pipeline's small-image limit


@dataclasses.dataclass(frozen=True)
class Entry:
    description: str
    image_size: int       # default input size for large images
    min_image_size: int   # smallest input the network can run (a 1x1 map before its classifier)
    small_images: str     # what happens at <= 64 px
    # Changes to the training recipe (flags/recipes.py) this network needs: the plain (batch-norm-free) nets
    # diverge at the ResNet learning rate; the AlexNet and VGG papers trained at 0.01 (batch 128 and 256) with
    # weight decay 5e-4.
    recipe: dict = dataclasses.field(default_factory=dict)


PLAIN_NET_RECIPE = {"learning_rate": 0.01, "weight_decay": 5e-4}

MODELS = {
    "resnet_v2": Entry("ResNet V2 (pre-activation), --depth picks the network", 224, 1,
                       "3x3 stride-1 stem without max-pool, or the CIFAR family for CIFAR depths"),
    "alexnet": Entry("AlexNet without local response normalization, as the chapter's faster variant", 224, 15,
                     "small-image variant: conv1 5x5 stride 1, fc6/fc7 of 512", PLAIN_NET_RECIPE),
    "alexnet_lrn": Entry("AlexNet with local response normalization after conv1 and conv2", 224, 15,
                         "small-image variant: conv1 5x5 stride 1, fc6/fc7 of 512", PLAIN_NET_RECIPE),
    "vgg16": Entry("VGGNet-16 (configuration D): 13 3x3 convolutions, three dense layers", 224, 32,
                   "CIFAR VGG-16: fc6/fc7 of 512", PLAIN_NET_RECIPE),
    "inception_v3": Entry("Inception V3 without the auxiliary head", 299, inception_v3.MIN_IMAGE_SIZE,
                          "refused: needs at least 75 px"),
}


@dataclasses.dataclass(frozen=True)
class ZooSpec:
    """What decides a non-ResNet network's shape."""
    name: str           # a key of MODELS
    family: str         # 'alexnet' | 'vgg' | 'inception'
    variant: str        # 'imagenet' | 'small-image variant'
    image_size: int
    include_top: bool   # False: the feature map only (the chapter's benchmark protocol)
    stages: tuple       # layers whose outputs `describe` prints

    @property
    def small(self):
        return self.variant == "small-image variant"


FAMILIES = {"alexnet": "alexnet", "alexnet_lrn": "alexnet", "vgg16": "vgg", "inception_v3": "inception"}
STAGES = {"alexnet": ("conv1", "pool1", "pool2", "pool5"),
          "vgg": tuple(f"block{i}_pool" for i in range(1, len(vgg.GROUPS) + 1)),
          "inception": ("stem_pool2",) + tuple(f"mixed{i}" for i in range(len(inception_v3.MODULES)))}


def check_model(name, image_size, depth=50, unit="auto", arch="auto", width=1.0, include_top=True):
    """The spec `create_model` would build, without building it; ValueError (one line) if it can't be built.
    depth, unit, arch and width are the ResNet's; the other networks ignore them."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    if name == "resnet_v2":
        return resnet_v2.resolve(depth, unit, arch, width, image_size)
    entry = MODELS[name]
    if image_size < entry.min_image_size:
        hint = (" (no small-image variant: use resnet_v2, alexnet or vgg16 for small images)"
                if name == "inception_v3" else "")
        raise ValueError(f"{name} needs images of at least {entry.min_image_size} px, not {image_size}{hint}")
    small = image_size <= SMALL_IMAGE_MAX
    family = FAMILIES[name]
    return ZooSpec(name, family, "small-image variant" if small else "imagenet", image_size, include_top,
                   STAGES[family])


def create_model(name, num_classes, image_size, *, depth=50, unit="auto", arch="auto", width=1.0, sync_bn=False,
                 bn_momentum=resnet_v2.BN_MOMENTUM, include_top=True):
    """Builds any network of MODELS.

    Args:
      name: a key of MODELS.
      num_classes, image_size: logits and input height = width (small images <= 64 px get the small variants).
      depth, unit, arch, width: the ResNet's choices (model/resnet_v2.py); ignored by the others.
      sync_bn, bn_momentum: batch norm of the ResNet and Inception V3 (AlexNet and VGG have none).
      include_top: False ends at the last feature map (see the module docstring); ResNets always have it.
    Returns:
      (keras.Model, spec): spec is resnet_v2.Spec for resnet_v2, a ZooSpec otherwise.
    Raises:
      ValueError with a one-line message for an unknown name or an unsupported image size.
    """
    if name == "resnet_v2":
        return resnet_v2.create(depth, num_classes, image_size, unit, arch, width, sync_bn, bn_momentum, include_top)
    spec = check_model(name, image_size, include_top=include_top)
    if spec.family == "alexnet":
        net = alexnet.build(num_classes, image_size, lrn=name == "alexnet_lrn", small=spec.small,
                            include_top=include_top, name=name)
    elif spec.family == "vgg":
        net = vgg.build(num_classes, image_size, small=spec.small, include_top=include_top, name=name)
    else:
        net = inception_v3.build(num_classes, image_size, include_top, sync_bn, bn_momentum, name=name)
    return net, spec
