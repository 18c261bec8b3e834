"""export.py's library side: a SavedModel that takes encoded images (or uint8 image tensors) of any size, applies
the run's eval preprocessing, and returns probabilities, the top-k classes and their names; and the other formats
(inference/formats.py) written beside it, verified (inference/verify.py) and described in model_card.json."""
import hashlib
import json
import os
import shutil
import tempfile
import time

import tensorflow as tf

import data
from data import preprocessing
from inference import formats as formats_lib, trained, verify
from training.compute import step as steps

BYTES_SIGNATURE, IMAGES_SIGNATURE = "serving_default", "images"


class Classifier(tf.Module):
    """The trained network plus its preprocessing and class names, as tf.functions with fixed signatures."""

    def __init__(self, model, top_k=5, tta="none"):
        super().__init__(name="classifier")
        if tta == "flip+crops" and model.info.small_images:
            raise ValueError(f"--tta=flip+crops crops a margin small images ({model.info.image_size} px) don't have; "
                             "use --tta=flip")
        self.net, self.info, self.tta = model.net, model.info, tta
        self.top_k = min(top_k, model.info.num_classes)
        self.class_names = tf.constant(model.info.class_names)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def classify_bytes(self, image_bytes):
        """image_bytes: a batch of encoded JPEG/PNG/BMP/GIF images, each of any size."""
        images = tf.map_fn(lambda b: trained.preprocess_encoded(b, self.info, self._margin), image_bytes,
                           fn_output_signature=trained.input_spec(self.info, self._margin))
        return self._classify(images)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def classify_images(self, images):
        """images: a batch of uint8 RGB images of one (any) size."""
        inputs = tf.map_fn(lambda image: trained.preprocess_image(image, self.info, self._margin), images,
                           fn_output_signature=trained.input_spec(self.info, self._margin))
        return self._classify(inputs)

    @property
    def _margin(self):
        return self.tta == "flip+crops"

    def _classify(self, inputs):
        # An empty batch gets empty outputs (TF's convolutions pass a 0-image batch through unchanged).
        logits = tf.cond(tf.shape(inputs)[0] > 0,
                         lambda: steps.predict(self.net, inputs, self.tta, self.info.image_size),
                         lambda: tf.zeros([0, self.info.num_classes]))
        probabilities = tf.nn.softmax(logits)
        top = tf.math.top_k(probabilities, k=self.top_k)
        return {"probabilities": probabilities, "top_k_indices": top.indices, "top_k_probabilities": top.values,
                "top_k_class_names": tf.gather(self.class_names, top.indices)}


def export(model, export_dir, top_k=5, tta="none"):
    """Writes the SavedModel; returns its signatures' names."""
    classifier = Classifier(model, top_k, tta)
    signatures = {BYTES_SIGNATURE: classifier.classify_bytes.get_concrete_function(),
                  IMAGES_SIGNATURE: classifier.classify_images.get_concrete_function()}
    tf.saved_model.save(classifier, export_dir, signatures=signatures)
    return sorted(signatures)


CARD = formats_lib.CARD


def preprocessing_text(info):
    """What a consumer does to an image before any export format but the SavedModel, in words."""
    size = info.image_size
    if info.small_images:
        return (f"decode to RGB; an image of {size}x{size} is used as it is, any other size is resized to "
                f"{size}x{size} (bilinear, antialiased, aspect not kept) and rounded to uint8")
    resized = preprocessing.tta_size(size)
    return (f"decode to RGB; resize the shorter side to {resized} (bilinear, antialiased, the other side in "
            f"proportion, rounded), then take the central {size}x{size} crop")


def write(model, export_dir, formats, *, top_k=5, tta="none", calibration=None, verify_examples=None,
          data_dir=None, broken=None, out=print):
    """Writes `formats` (inference.formats.Format) of `model` and model_card.json into export_dir, atomically:
    everything is staged beside it and renamed at the end, so a failure leaves no directory. Each format but the
    SavedModel is run by its own runtime on verify_examples test images against the SavedModel (0: none; None: up
    to verify.VERIFY_CAP, and a SavedModel alone whose test images can't be read goes unverified).
    calibration: the number of training images int8 is calibrated on. broken: a format written without its
    normalization (a testing aid). Returns the model card."""
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(export_dir))}.exporting-", dir=parent)
    try:
        card = _write_staged(model, staging, formats, top_k, tta, calibration, verify_examples, data_dir, broken,
                             out)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it from a server under another uid
        os.rename(staging, export_dir)
        return card
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask():
    """The process's umask (read by setting it: os has no getter), which os.makedirs applies to the subfolders."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _reason(error):
    """The first line of why data could not be read: a DataError whole (it is ours, with the command that fixes
    it), TensorFlow's first line cut at 200 characters."""
    if isinstance(error, data.DataError):
        return str(error).strip().splitlines()[0]
    return str(getattr(error, "message", error)).strip().splitlines()[0][:200]


def _write_staged(model, staging, formats, top_k, tta, calibration, verify_examples, data_dir, broken, out):
    names = [f.name for f in formats]
    # The SavedModel is the reference every other format is checked against: written even when not asked for.
    reference = staging if "saved_model" in names else os.path.join(staging, ".reference")
    export(model, reference, top_k, tta)
    pixel_model = formats_lib.PixelModel(model.net, model.info)
    batches = None
    if "tflite_int8" in names:
        batches = calibration_batches(model.info, data_dir, calibration)
    for fmt in formats:
        if fmt.name == "saved_model":
            continue
        started = time.perf_counter()
        source = formats_lib.PixelModel(model.net, model.info, broken=True) if fmt.name == broken else pixel_model
        with open(os.path.join(staging, fmt.file), "wb") as f:
            f.write(formats_lib.convert(source, fmt, batches))
        out(f"wrote {fmt.file} ({fmt.description}) in {time.perf_counter() - started:.1f} s")
    rows = None
    if verify_examples != 0:
        rows = verified(staging, formats, model.info, data_dir, verify_examples, reference, out)
    else:
        out("verification skipped (--verify_examples=0): the formats were not run")
    if reference != staging:
        shutil.rmtree(reference)
    card = model_card(model, staging, formats, top_k, tta, calibration if batches else None, rows)
    with open(os.path.join(staging, CARD), "w") as f:
        json.dump(card, f, indent=2)
    return card


def verified(staging, formats, info, data_dir, examples, reference, out):
    """verify.verify()'s rows, printed and checked; None for a SavedModel alone whose test images can't be read
    and whose verification was not asked for (examples None: the default), as for an imported run."""
    try:
        rows = verify.verify(staging, formats, info, data_dir, examples or verify.VERIFY_CAP, reference)
    except (tf.errors.OpError, data.DataError) as e:
        reason = _reason(e)
        if examples is None and [f.name for f in formats] == ["saved_model"]:
            out(f"verification skipped: the test images can't be read ({reason})")
            return None
        raise data.DataError(f"the formats are verified on the run's test images, which can't be read ({reason}); "
                             f"the run recorded --data_dir={data_dir}: pass --data_dir where {info.name} is "
                             "prepared, or --verify_examples=0 to export unverified") from None
    for line in verify.table(rows):
        out(line)
    verify.check(rows)
    return rows


def calibration_batches(info, data_dir, examples):
    """int8's calibration set: `examples` training images spread over the split, in the eval transform, as
    float32 pixel batches [1, S, S, 3]. Raises DataError naming the run's data dir when they can't be read."""
    try:
        pixels = [p.numpy()[None] for _, p, _ in data.make_pixel_dataset(info, "train", data_dir=data_dir,
                                                                          limit=examples, spread=True)]
    except (tf.errors.OpError, data.DataError) as e:
        reason = _reason(e)
        raise data.DataError(f"tflite_int8 is calibrated on the run's training images, which can't be read "
                             f"({reason}); the run recorded --data_dir={data_dir}: pass --data_dir where "
                             f"{info.name} is prepared, or leave tflite_int8 out") from None
    if not pixels:
        raise data.DataError(f"tflite_int8 needs training images to calibrate on; {info.name} has none")
    return pixels


def model_card(model, export_dir, formats, top_k, tta, calibration, rows):
    """What a consumer needs to run each file, and what the verification measured."""
    info = model.info
    files = {}
    for fmt in formats:
        path = os.path.join(export_dir, fmt.file)
        digest = None if fmt.name == "saved_model" else hashlib.sha256(open(path, "rb").read()).hexdigest()
        files[fmt.name] = {"file": fmt.file or ".", "description": fmt.description, "sha256": digest,
                           "bytes": verify.size(path)}
    return {
        "source": {"checkpoint": model.checkpoint, "step": model.step, "ema_weights": model.averaged},
        "classes": list(info.class_names),
        "input": {
            "layout": f"[n, {info.image_size}, {info.image_size}, 3], RGB, any n",
            "float_formats": "float32 pixels in 0-255",
            "tflite_int8": "uint8 pixels in 0-255",
            "preprocessing": preprocessing_text(info),
            "image_size": info.image_size, "small_images": info.small_images,
            "normalization": {"inside_the_model": True, "mean": list(info.mean), "std": list(info.std),
                              "formula": "(pixels - mean) / std, per RGB channel"},
        },
        "output": f"float32 probabilities [n, {info.num_classes}] (a softmax), in the order of `classes`",
        "saved_model": {"signatures": [BYTES_SIGNATURE, IMAGES_SIGNATURE], "top_k": min(top_k, info.num_classes),
                        "tta": tta, "note": "takes encoded images or uint8 images of any size and preprocesses them "
                                            "itself"},
        "calibration": calibration and {"split": "train", "examples": calibration},
        "files": files,
        "verification": rows or "skipped",
    }
