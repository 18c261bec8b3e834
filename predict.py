"""Classifies image files with a trained run and writes the top-k classes per image to a CSV.

    python predict.py --model_dir=runs/cifar10_resnet_v2_50 cat.jpg photos/ --top_k=3 --output=preds.csv

Images of any size get the run's eval preprocessing; unreadable files get a row with an `error`, not a crash.
"""
from console import cuda_noise

cuda_noise.start()  # TensorFlow's CUDA probing lines, dropped where there is no GPU
import os  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from console import logs  # noqa: E402
from flags import shared  # noqa: E402

flags.DEFINE_string("model_dir", None, "The run directory of train.py (or give --model).")
flags.DEFINE_string("model", None, "An export instead of a run: export.py's --export_dir (its SavedModel), or a "
                    ".tflite or .onnx file in it, fed as its model_card.json says.")
shared.define_checkpoint()
shared.define_tta()
shared.define_raw_weights()
# float32 by default, like eval.py and export.py, so the three give the same probabilities.
shared.define_dtype("Compute dtype of the network (weights stay float32, outputs are float32)")
flags.DEFINE_integer("top_k", 5, "Classes per image (at most the number of classes).")
flags.DEFINE_string("output", "predictions.csv", "CSV written with path,label_1,prob_1,...,label_k,prob_k,error.")
flags.DEFINE_integer("batch_size", 32, "Images per forward pass.")
flags.adopt_module_key_flags(shared)  # --help lists them with this tool's own
FLAGS = flags.FLAGS


def main(argv):
    import time
    import data
    from inference import predict
    logs.quiet()
    paths = predict.list_images(argv[1:])
    if not paths:
        logs.fail("no images given: pass image files or folders after the flags" if len(argv) == 1 else
                  f"no image files ({', '.join(data.folder.IMAGE_EXTENSIONS)}) in {' '.join(argv[1:])}")
    if FLAGS.top_k < 1 or FLAGS.batch_size < 1:
        logs.fail("--top_k and --batch_size must be positive")
    try:
        open(FLAGS.output, "a").close()  # a bad --output fails now, not after every image is classified
    except OSError as e:
        logs.fail(f"can't write --output={FLAGS.output}: {e.strerror or e}")
    classifier, what = load_classifier()
    start, rows = time.perf_counter(), []
    for row in predict.predict(classifier, paths, FLAGS.batch_size):
        print(predict.console_line(row), flush=True)
        rows.append(row)
    try:
        predict.write_csv(FLAGS.output, rows, classifier.top_k)
    except OSError as e:
        logs.fail(f"can't write --output={FLAGS.output}: {e.strerror or e}")
    errors = sum(bool(r["error"]) for r in rows)
    seconds = time.perf_counter() - start
    print(f"predicted {len(rows) - errors} images ({errors} unreadable) in {seconds:.1f} s "
          f"({len(rows) / seconds:.1f} images/s) with {what}; wrote {FLAGS.output}")


def load_classifier():
    """(classifier, what it is) of --model_dir or --model; a one-line error for anything else."""
    import data
    from inference import export, exported, trained
    from training.compute import precision
    if (FLAGS.model_dir is None) == (FLAGS.model is None):
        logs.fail("give --model_dir (a run) or --model (an export), one of them")
    if FLAGS.model is not None:
        given = [f"--{n}" for n in ("checkpoint", "raw_weights", "dtype") if FLAGS[n].present]
        if given or FLAGS.tta != "none":
            logs.fail(f"{', '.join(given + (['--tta'] if FLAGS.tta != 'none' else []))} apply to --model_dir: an "
                      "export holds its weights and precision")
        try:
            classifier = exported.ExportedClassifier(FLAGS.model, FLAGS.top_k)
        except exported.ExportError as e:
            logs.fail(e)
        return classifier, classifier.description
    choice, _ = precision.choose(**shared.dtype_request(FLAGS, "predict.py"), num_gpus=1)  # the first GPU, if any
    print(choice.line(), flush=True)
    try:
        model = trained.load(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.raw_weights, choice.dtype)
        print(f"checkpoint {model.reason}", flush=True)
        classifier = export.Classifier(model, FLAGS.top_k, FLAGS.tta)
    except (trained.LoadError, data.DataError, ValueError) as e:
        logs.fail(e)
    return classifier, (f"{model.checkpoint} (step {model.step}{', EMA weights' if model.averaged else ''}, "
                        f"{choice.dtype})")


if __name__ == "__main__":
    logs.run(main)
