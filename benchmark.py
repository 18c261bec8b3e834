"""Times a ResNet V2 the way the book chapter did (time_tensorflow_run):

    python benchmark.py --model=resnet_v2_152 --batch_size=32 --image_size=224 --num_batches=100 --mode=forward
    python benchmark.py --model=resnet_v2_50 --mode=train --reference=keras   # Keras' ResNet50V2, same protocol
    python benchmark.py --peak                                                # this machine's matmul GFLOP/s
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("model", "resnet_v2_50", "resnet_v2_<depth>: 18, 34, 50, 101, 152, 200 or a CIFAR depth (20, 56...).")
flags.DEFINE_enum("mode", "forward", ["forward", "forward_backward", "train"],
                  "forward: inference; forward_backward: the chapter's l2-loss gradients; train: one SGD step.")
flags.DEFINE_integer("batch_size", 32, "Images per batch.")
flags.DEFINE_integer("image_size", 224, "Input height and width.")
flags.DEFINE_integer("num_classes", 1000, "Logits.")
flags.DEFINE_integer("num_batches", 100, "Timed batches.")
flags.DEFINE_integer("warmup_steps", 10, "Untimed batches first (graph tracing, allocator warm-up).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16", "float16"], "Compute dtype (Keras mixed precision).")
flags.DEFINE_bool("xla", False, "Compile the timed function with XLA.")
flags.DEFINE_enum("reference", None, ["keras"], "Time keras.applications' ResNet50V2/101V2/152V2 instead of ours.")
flags.DEFINE_string("data", None, "Feed batches from this dataset's training pipeline (e.g. cifar10) instead of "
                    "fixed random inputs; sets --image_size and --num_classes.")
flags.DEFINE_string("data_dir", None, "tfds data directory for --data.")
flags.DEFINE_bool("peak", False, "Only time a 2048x2048 float32 matmul: the machine's practical peak.")
FLAGS = flags.FLAGS

KERAS_REFERENCES = {50: "ResNet50V2", 101: "ResNet101V2", 152: "ResNet152V2"}


def build(depth, image_size, num_classes):
    """(model, description) for ours or, with --reference=keras, Keras' application of the same depth."""
    import keras
    import model
    if FLAGS.reference == "keras":
        if depth not in KERAS_REFERENCES:
            raise ValueError(f"--reference=keras has depths {', '.join(map(str, KERAS_REFERENCES))}, not {depth}")
        net = getattr(keras.applications, KERAS_REFERENCES[depth])(
            weights=None, input_shape=(image_size, image_size, 3), classes=num_classes)
        return net, f"keras.applications.{KERAS_REFERENCES[depth]}"
    net, spec = model.create(depth, num_classes, image_size)
    return net, f"{FLAGS.model}: {spec.family} family, {spec.unit} units"


def main(argv):
    del argv
    import keras
    import data
    import model
    from training import timing

    if FLAGS.peak:
        print(f"peak: {timing.matmul_peak():.1f} GFLOP/s (2048x2048 float32 matmul, best of 20)")
        return
    name, _, depth = FLAGS.model.rpartition("_")
    if name != "resnet_v2" or not depth.isdigit():
        sys.exit(f"error: --model must look like resnet_v2_50 (resnet_v2_<depth>), not {FLAGS.model!r}")
    if FLAGS.dtype != "float32":
        keras.mixed_precision.set_global_policy(f"mixed_{FLAGS.dtype}")
    image_size, num_classes, dataset = FLAGS.image_size, FLAGS.num_classes, None
    try:
        if FLAGS.data:
            info = data.get_info(FLAGS.data, FLAGS.data_dir)
            image_size, num_classes = info.image_size, info.num_classes
            dataset = data.make_train_dataset(info, data_dir=FLAGS.data_dir, global_batch_size=FLAGS.batch_size)
        net, description = build(int(depth), image_size, num_classes)
    except (ValueError, data.DataError) as e:
        sys.exit(f"error: {e}")
    print(f"{description}, batch {FLAGS.batch_size}, {image_size}x{image_size}, mode {FLAGS.mode}, "
          f"dtype {FLAGS.dtype}, xla {FLAGS.xla}, inputs {FLAGS.data or 'random'}")
    fn = timing.make_workload(net, FLAGS.mode, FLAGS.batch_size, image_size, num_classes, FLAGS.xla, dataset)
    mean, _ = timing.time_run(fn, timing.MODES[FLAGS.mode], FLAGS.num_batches, FLAGS.warmup_steps)
    achieved = timing.flops_per_batch(net, FLAGS.mode, FLAGS.batch_size) / mean / 1e9
    peak = timing.matmul_peak()
    print(f"images/s: {FLAGS.batch_size / mean:.1f}")
    print(f"model: {model.flops_per_image(net) / 1e9:.3f} G multiply-adds per image; "
          f"achieved: {achieved:.1f} GFLOP/s")
    print(f"peak: {peak:.1f} GFLOP/s (2048x2048 float32 matmul); model at {100 * achieved / peak:.0f}% of it")


if __name__ == "__main__":
    app.run(main)
