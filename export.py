"""Exports a trained run: a SavedModel that classifies encoded images (JPEG/PNG, any size) or uint8 tensors, and
on request TFLite (float32, float16, int8) and ONNX files, each verified against the SavedModel on the run's test
images by its own runtime, with model_card.json describing how to feed them.

    python export.py --model_dir=runs/cifar10_resnet_v2_50 --export_dir=exported/cifar10_r50
    python export.py --model_dir=runs/cifar10_resnet_v2_50 --export_dir=exported/cifar10_r50 --formats=all

SavedModel signatures: serving_default(image_bytes: string [n]) and images(images: uint8 [n, h, w, 3]); both
return probabilities, top_k_indices, top_k_probabilities and top_k_class_names.
"""
from console import cuda_noise

cuda_noise.start()  # TensorFlow's CUDA probing lines, dropped where there is no GPU
import os  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from console import logs  # noqa: E402
from flags import shared  # noqa: E402

flags.DEFINE_string("model_dir", None, "The run directory of train.py.", required=True)
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (must not exist yet).", required=True)
shared.define_checkpoint()
shared.define_tta()
shared.define_raw_weights()
# float32 by default, unlike train.py: a SavedModel is served elsewhere, and auto would pick the dtype for the
# machine that exports it (a bf16 model on a CPU without AMX runs slower than float32).
shared.define_dtype("Compute dtype of the network (weights stay float32, outputs are float32)")
flags.DEFINE_integer("top_k", 5, "Classes returned per image by the SavedModel (at most the number of classes).")
flags.DEFINE_list("formats", ["saved_model"], "Comma-separated: saved_model, tflite, tflite_fp16, tflite_int8, onnx, "
                  "or all. TFLite and ONNX take [n, S, S, 3] pixels 0-255 after the run's resize and crop, with the "
                  "normalization inside (model_card.json).")
flags.DEFINE_integer("calibration_examples", 256, "Training images tflite_int8 is calibrated on, spread over the "
                     "training split, in the eval transform.")
flags.DEFINE_integer("verify_examples", None, "Test images each format is checked on against the SavedModel "
                     "(default: the whole test split, at most 2000; 0: no verification).")
flags.DEFINE_string("data_dir", None, "tfds data directory, if it moved since training (calibration, verification).")
flags.DEFINE_string("debug_break_format", None, "Testing aid: write this format without its normalization, to "
                    "rehearse a verification failure.")
flags.adopt_module_key_flags(shared)  # --help lists them with this tool's own
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import tensorflow as tf
    import data
    from inference import export, trained, verify
    from training.compute import precision
    logs.quiet()
    formats = check_request()
    choice, _ = precision.choose(**shared.dtype_request(FLAGS, "export.py"), num_gpus=1)  # the first GPU, if any
    others = [f.name for f in formats if f.name != "saved_model"]
    if others and choice.dtype != "float32":
        logs.fail(f"--dtype={FLAGS.dtype} ({choice.dtype}) applies to the SavedModel only; {', '.join(others)} are "
                  "float32 (and int8): export them without --dtype, or the SavedModel alone with it")
    print(choice.line(), flush=True)
    try:
        # TensorFlow's own kernels: the formats run on machines other than this one, and their converters know them.
        model = trained.load(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.raw_weights, choice.dtype, portable=True)
        print(f"checkpoint {model.reason}", flush=True)
    except (trained.LoadError, data.DataError) as e:
        logs.fail(e)
    if model.info.small_images and FLAGS.tta == "flip+crops":
        logs.fail(f"--tta=flip+crops crops a margin small images ({model.info.image_size} px) don't have; use "
                  "--tta=flip")
    try:
        card = export.write(model, FLAGS.export_dir, formats, top_k=FLAGS.top_k, tta=FLAGS.tta,
                            calibration=FLAGS.calibration_examples, verify_examples=FLAGS.verify_examples,
                            data_dir=FLAGS.data_dir or model.data_dir, broken=FLAGS.debug_break_format,
                            out=lambda line: print(line, flush=True))
    except (verify.VerificationError, data.DataError) as e:
        logs.fail(e)
    except (OSError, tf.errors.OpError) as e:
        reason = e.message if isinstance(e, tf.errors.OpError) else (e.strerror or str(e))
        logs.fail(f"can't write --export_dir={FLAGS.export_dir}: {reason.splitlines()[0]}")
    checked = "verified" if isinstance(card["verification"], dict) else "not verified"
    print(f"exported {model.checkpoint} (step {model.step}{', EMA weights' if model.averaged else ''}, "
          f"{model.info.num_classes} classes, tta {FLAGS.tta}, {model.info.image_size}x{model.info.image_size} "
          f"inputs, SavedModel computing in {choice.dtype}) to {FLAGS.export_dir}: "
          f"{', '.join(f.name for f in formats)} ({checked}), {export.CARD}")


def check_request():
    """The formats asked for, after every refusal that needs no run: a one-line error and nothing written."""
    from inference import formats as formats_lib
    if os.path.exists(FLAGS.export_dir):
        logs.fail(f"--export_dir={FLAGS.export_dir} already exists; remove it or choose another")
    if FLAGS.top_k < 1 or FLAGS.calibration_examples < 1 or (FLAGS.verify_examples or 0) < 0:
        logs.fail("--top_k and --calibration_examples must be positive, --verify_examples not negative")
    try:
        formats = formats_lib.parse(FLAGS.formats)
    except ValueError as e:
        logs.fail(e)
    others = [f.name for f in formats if f.name != "saved_model"]
    if others and FLAGS.tta != "none":
        logs.fail(f"--tta={FLAGS.tta} is built into the SavedModel only; {', '.join(others)} classify one view: "
                  "export them without --tta")
    if FLAGS.debug_break_format and FLAGS.debug_break_format not in others:
        logs.fail(f"--debug_break_format={FLAGS.debug_break_format} must be one of the --formats besides saved_model")
    missing = formats_lib.missing_tools(formats)
    if missing:
        logs.fail(f"--formats={','.join(FLAGS.formats)} needs {', '.join(missing)}, not installed here: pip install "
                  "-r requirements.txt")
    return formats


if __name__ == "__main__":
    logs.run(main)
