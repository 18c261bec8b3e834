"""Times a ResNet V2 the way the book chapter did (time_tensorflow_run):

    python benchmark.py --model=resnet_v2_152 --batch_size=32 --image_size=224 --num_batches=100 --mode=forward
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
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras
    import model
    from training import timing

    name, _, depth = FLAGS.model.rpartition("_")
    if name != "resnet_v2" or not depth.isdigit():
        sys.exit(f"error: --model must look like resnet_v2_50 (resnet_v2_<depth>), not {FLAGS.model!r}")
    if FLAGS.dtype != "float32":
        keras.mixed_precision.set_global_policy(f"mixed_{FLAGS.dtype}")
    try:
        net, spec = model.create(int(depth), FLAGS.num_classes, FLAGS.image_size)
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(f"{FLAGS.model}: {spec.family} family, {spec.unit} units, batch {FLAGS.batch_size}, "
          f"{FLAGS.image_size}x{FLAGS.image_size}, mode {FLAGS.mode}, dtype {FLAGS.dtype}, xla {FLAGS.xla}")
    fn = timing.make_workload(net, FLAGS.mode, FLAGS.batch_size, FLAGS.image_size, FLAGS.num_classes, FLAGS.xla)
    mean, _ = timing.time_run(fn, timing.MODES[FLAGS.mode], FLAGS.num_batches, FLAGS.warmup_steps)
    flops = timing.flops_per_batch(net, FLAGS.mode, FLAGS.batch_size)
    print(f"images/s: {FLAGS.batch_size / mean:.1f}")
    print(f"model: {model.flops_per_image(net) / 1e9:.3f} G multiply-adds per image; "
          f"achieved: {flops / mean / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    app.run(main)
