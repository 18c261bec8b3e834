"""Exports a trained run as a SavedModel that classifies encoded images (JPEG/PNG, any size) or uint8 tensors.

    python export.py --model_dir=runs/cifar10_resnet_v2_50 --export_dir=exported/cifar10_r50

Signatures: serving_default(image_bytes: string [n]) and images(images: uint8 [n, h, w, 3]); both return
probabilities, top_k_indices, top_k_probabilities and top_k_class_names.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from flags import logs, shared  # noqa: E402

flags.DEFINE_string("model_dir", None, "The run directory of train.py.", required=True)
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (must not exist yet).", required=True)
shared.define_checkpoint()
shared.define_tta()
shared.define_raw_weights()
# float32 by default, unlike train.py: a SavedModel is served elsewhere, and auto would pick the dtype for the
# machine that exports it (a bf16 model on a CPU without AMX runs slower than float32).
shared.define_dtype("Compute dtype of the network (weights stay float32, outputs are float32)")
flags.DEFINE_integer("top_k", 5, "Classes returned per image (at most the number of classes).")
flags.adopt_module_key_flags(shared)  # --help lists them with this tool's own
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import shutil
    import tensorflow as tf
    import data
    from inference import export, trained
    from training.compute import precision
    logs.quiet()
    if os.path.exists(FLAGS.export_dir):
        logs.fail(f"--export_dir={FLAGS.export_dir} already exists; remove it or choose another")
    if FLAGS.top_k < 1:
        logs.fail("--top_k must be positive")
    choice, _ = precision.choose(**shared.dtype_request(FLAGS, "export.py"), num_gpus=1)  # the first GPU, if any
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
    logs.run(main)
