"""Prints a model's summary: python -m model [--model=vgg16] [--depth=50] [--dataset=cifar10 | --image_size=224
--num_classes=1000]."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from console import cuda_noise, logs  # noqa: E402

import model  # noqa: E402

# Input size and classes of the datasets whose shape is known without reading them.
KNOWN_DATASETS = {"cifar10": (32, 10), "cifar100": (32, 100), "imagenet2012": (224, 1000)}

flags.DEFINE_enum("model", "resnet_v2", list(model.MODELS), "Network (model/zoo.py's table).")
flags.DEFINE_integer("depth", 50, "ResNet depth, e.g. 18, 34, 50, 101, 152, 200 (ImageNet family) or 20, 56, 110, 164.")
flags.DEFINE_enum("unit", "auto", ["auto", "basic", "bottleneck"], "ResNet residual unit.")
flags.DEFINE_enum("arch", "auto", ["auto", "cifar", "imagenet"], "ResNet family.")
flags.DEFINE_float("width", 1.0, "Width multiplier on every ResNet stage's filters (wide ResNets).")
flags.DEFINE_string("dataset", None, f"Sets image size and classes: one of {', '.join(KNOWN_DATASETS)}.")
flags.DEFINE_integer("image_size", None, "Input height and width (ignored with --dataset); default: the model's "
                     "(224, inception_v3 299).")
flags.DEFINE_integer("num_classes", 1000, "Number of classes (ignored with --dataset).")
flags.DEFINE_bool("include_top", True, "--noinclude_top: stop at the last feature map (the chapter's benchmark).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    cuda_noise.import_tensorflow()  # the devices are probed: the CUDA-line filter ends
    image_size, num_classes = FLAGS.image_size or model.MODELS[FLAGS.model].image_size, FLAGS.num_classes
    if FLAGS.dataset:
        if FLAGS.dataset not in KNOWN_DATASETS:
            sys.exit(f"error: --dataset must be one of {', '.join(KNOWN_DATASETS)}; "
                     "for others give --image_size and --num_classes")
        image_size, num_classes = KNOWN_DATASETS[FLAGS.dataset]
    try:
        net, spec = model.create_model(FLAGS.model, num_classes, image_size, depth=FLAGS.depth, unit=FLAGS.unit,
                                       arch=FLAGS.arch, width=FLAGS.width, include_top=FLAGS.include_top)
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(model.describe(net, spec))


if __name__ == "__main__":
    logs.run(main)
