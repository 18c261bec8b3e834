"""Exports a trained run as a SavedModel that classifies encoded images (JPEG/PNG, any size) or uint8 tensors.

    python export.py --model_dir=runs/cifar10_resnet_v2_50 --export_dir=exported/cifar10_r50

Signatures: serving_default(image_bytes: string [n]) and images(images: uint8 [n, h, w, 3]); both return
probabilities, top_k_indices, top_k_probabilities and top_k_class_names.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("model_dir", None, "The run directory of train.py.", required=True)
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (must not exist yet).", required=True)
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix, or 'best'; default: the run's best, else its latest.")
flags.DEFINE_enum("tta", "none", ["none", "flip", "flip+crops"], "Test-time augmentation: the mean of the "
                  "softmax over the image and its mirror; flip+crops (large images) also over 4 corner crops.")
flags.DEFINE_bool("raw_weights", False, "The raw weights of a run trained with --ema_decay (default: its EMA).")
# float32 by default, unlike train.py: a SavedModel is served elsewhere, and auto would pick the dtype for the
# machine that exports it (a bf16 model on a CPU without AMX or AVX512-BF16 is emulated, slower).
flags.DEFINE_enum("dtype", "float32", ["auto", "float32", "bfloat16", "float16"], "Compute dtype of the network "
                  "(weights stay float32, outputs are float32); auto: bfloat16 if this machine's CPU has AMX or "
                  "AVX512-BF16 or its GPU compute capability >= 8.0, float16 on 7.x GPUs, else float32.")
flags.DEFINE_integer("top_k", 5, "Classes returned per image (at most the number of classes).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import shutil
    import tensorflow as tf
    import data
    from flags import logs
    from inference import export, trained
    from training import precision
    logs.quiet()
    if os.path.exists(FLAGS.export_dir):
        logs.fail(f"--export_dir={FLAGS.export_dir} already exists; remove it or choose another")
    if FLAGS.top_k < 1:
        logs.fail("--top_k must be positive")
    choice, _ = precision.choose(FLAGS.dtype, num_gpus=1)  # TensorFlow computes on the first GPU, if any
    print(choice.line(), flush=True)
    try:
        model = trained.load(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.raw_weights, choice.dtype)
    except (trained.LoadError, data.DataError) as e:
        logs.fail(e)
    try:
        signatures = export.export(model, FLAGS.export_dir, FLAGS.top_k, FLAGS.tta)
    except ValueError as e:
        logs.fail(e)
    except (OSError, tf.errors.OpError) as e:
        shutil.rmtree(FLAGS.export_dir, ignore_errors=True)  # half an export would block the next attempt
        reason = e.message if isinstance(e, tf.errors.OpError) else (e.strerror or str(e))
        logs.fail(f"can't write --export_dir={FLAGS.export_dir}: {reason.splitlines()[0]}")
    print(f"exported {model.checkpoint} (step {model.step}{', EMA weights' if model.averaged else ''}, "
          f"{model.info.num_classes} classes, tta {FLAGS.tta}, {model.info.image_size}x{model.info.image_size} "
          f"inputs, computing in {choice.dtype}) to {FLAGS.export_dir}; "
          f"signatures: {', '.join(signatures)}")


if __name__ == "__main__":
    app.run(main)
