"""Imports published ResNet V2 ImageNet weights into a run directory that eval.py, predict.py, export.py and
train.py --init_checkpoint take as it is.

    python pretrained.py --source=slim:/path/resnet_v2_50.ckpt --model_dir=runs/imagenet_r50_slim
    python pretrained.py --source=/path/resnet50v2_weights_tf_dim_ordering_tf_kernels.h5 --model_dir=DIR
    python pretrained.py --source=keras:resnet50v2 --model_dir=DIR   # also resnet101v2, resnet152v2, *_notop
"""
from console import cuda_noise

cuda_noise.start()  # TensorFlow's CUDA probing lines, dropped where there is no GPU
import os  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from console import logs  # noqa: E402

flags.DEFINE_string("source", None, "slim:CHECKPOINT_PREFIX_OR_FOLDER (TF-slim model zoo), a Keras applications "
                    ".h5 file, or keras:NAME (resnet50v2, resnet101v2, resnet152v2, each also _notop) downloaded "
                    "into the Keras cache.", required=True)
flags.DEFINE_string("model_dir", None, "The run directory to create (must be new or empty).", required=True)
flags.DEFINE_integer("depth", None, "50, 101 or 152; default: what the file holds (an error if it disagrees).")
flags.DEFINE_integer("image_size", 224, "Input size of the run (slim's README evaluates these weights at 299).")
FLAGS = flags.FLAGS


def main(argv):
    import sys
    from flags import recipes
    from model import pretrained as weights
    from training.rundir import pretrained
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; flags look like --source=keras:resnet50v2")
    logs.quiet()
    try:
        pretrained.import_run(FLAGS.source, FLAGS.model_dir, recipes.published_imagenet(), FLAGS.depth,
                              FLAGS.image_size)
    except (weights.WeightsError, pretrained.TrainingError) as e:
        logs.fail(e)


if __name__ == "__main__":
    logs.run(main)
