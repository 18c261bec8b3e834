"""export.py --formats: every format of a depth-8 run, each checked here against the SavedModel with its own
runtime (LiteRT, onnxruntime) on the shared subset's test split, the input contract followed from model_card.json
alone, int8's types and calibration split, predict.py --model, and the one-line refusals that leave no directory."""
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from support import ROOT, run

STEPS = 254  # 2 epochs of the subset at batch 32: well above chance, so agreement and top-1 mean something


@pytest.fixture(scope="module")
def exported(cifar_subset_dir, tmp_path_factory):
    """A depth-8 run and its export in every format, verified by export.py on the whole test split."""
    model_dir, export_dir = tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("exports") / "all"
    run("train.py", "--dataset=cifar10", f"--data_dir={cifar_subset_dir}", f"--model_dir={model_dir}",
        "--depth=8", "--batch_size=32", f"--train_steps={STEPS}", "--log_every_steps=127", "--steps_per_loop=127",
        "--deterministic", "--validation_split=0")  # the same weights every time, so each format's margin to its
    # threshold is fixed
    result = run("export.py", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--formats=all")
    return cifar_subset_dir, model_dir, export_dir, result.stdout + result.stderr


def split_images(data_dir):
    """The test split as uint8 [n, 32, 32, 3] and int64 [n]: at the run's size, so no resize is involved."""
    split = tfds.as_numpy(tfds.load("cifar10", split="test", data_dir=data_dir, batch_size=-1))
    return split["image"], split["label"]


def tflite_probabilities(path, images):
    """The bare LiteRT interpreter over uint8 images, fed float32 pixels or uint8 as the file's input says."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(path))
    entry, exit_ = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(entry["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], images.astype(entry["dtype"]))  # uint8 pixels, or the same as float32
    interpreter.invoke()
    return interpreter.get_tensor(exit_["index"])


def onnx_probabilities(path, images):
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images.astype(np.float32)})[0]


def saved_model_probabilities(export_dir, images):
    return tf.saved_model.load(str(export_dir)).signatures["images"](images=tf.constant(images))[
        "probabilities"].numpy()


def test_every_format_meets_its_thresholds_recomputed_here_from_the_files(exported):
    data_dir, _, export_dir, out = exported
    images, labels = split_images(data_dir)
    reference = saved_model_probabilities(export_dir, images)
    measured = {"tflite": tflite_probabilities(export_dir / "model.tflite", images),
                "tflite_fp16": tflite_probabilities(export_dir / "model_fp16.tflite", images),
                "tflite_int8": tflite_probabilities(export_dir / "model_int8.tflite", images),
                "onnx": onnx_probabilities(export_dir / "model.onnx", images)}
    top_1 = (reference.argmax(1) == labels).mean()
    report = {"saved_model": f"{top_1:.4f}"}
    for name, probabilities in measured.items():
        agreement = (probabilities.argmax(1) == reference.argmax(1)).mean()
        drift = np.abs(probabilities - reference).max()
        own = (probabilities.argmax(1) == labels).mean()
        report[name] = f"top-1 {own:.4f}, agreement {agreement:.4f}, max |dp| {drift:.2e}"
        if name in ("tflite", "onnx"):
            assert agreement >= 0.999 and drift <= 1e-4, (name, report)
        elif name == "tflite_fp16":
            assert agreement >= 0.99, (name, report)
        else:
            assert abs(top_1 - own) <= 0.01, (name, report)
    print(f"{len(labels)} test images: {report}")
    assert len(labels) == 1017 and top_1 > 0.25  # well above chance (0.10)
    card = json.loads((export_dir / "model_card.json").read_text())
    assert card["verification"]["tflite_int8"]["examples"] == 1017 and "tflite_int8 |" in out


def test_float_exports_match_the_saved_model_through_predict_and_through_the_card_alone(exported, tmp_path):
    data_dir, model_dir, export_dir, _ = exported
    images, _ = split_images(data_dir)
    for i in range(8):
        tf.io.write_file(str(tmp_path / "photos" / f"{i}.png"), tf.io.encode_png(images[i]))
    reference = saved_model_probabilities(export_dir, images[:8])
    card = json.loads((export_dir / "model_card.json").read_text())
    for name in ("tflite", "onnx"):
        path = export_dir / card["files"][name]["file"]
        # predict.py on the deployed file: the same CSV columns, the SavedModel's probabilities.
        run("predict.py", f"--model={path}", str(tmp_path / "photos"), f"--output={tmp_path / name}.csv",
            "--top_k=10")
        with open(tmp_path / f"{name}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for i, row in enumerate(rows):
            by_class = {row[f"label_{k}"]: float(row[f"prob_{k}"]) for k in range(1, 11)}
            np.testing.assert_allclose([by_class[c] for c in card["classes"]], reference[i], atol=1e-4)
        # The bare runtime, fed only as the card says: decode to RGB, 32x32 used as it is, float32 pixels 0-255.
        assert card["input"]["image_size"] == 32 and "is used as it is" in card["input"]["preprocessing"]
        assert card["input"]["float_formats"] == "float32 pixels in 0-255"
        decoded = np.stack([tf.io.decode_png(tf.io.read_file(str(tmp_path / "photos" / f"{i}.png")), 3).numpy()
                            for i in range(8)]).astype(np.float32)
        bare = tflite_probabilities(path, decoded) if name == "tflite" else onnx_probabilities(path, decoded)
        np.testing.assert_allclose(bare, reference, atol=1e-4)
        assert card["files"][name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_int8_takes_uint8_holds_int8_weights_and_calibrates_on_training_images_only(exported, tmp_path):
    data_dir, model_dir, export_dir, _ = exported
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(export_dir / "model_int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    tensors = interpreter.get_tensor_details()
    kernels = [t for t in tensors if len(t["shape"]) == 4 and t["shape"][0] > 3 and "conv" in t["name"].lower()
               and t["dtype"] != np.int32]
    assert kernels and all(t["dtype"] == np.int8 for t in kernels), [(t["name"], t["dtype"]) for t in kernels]
    # With the test split's files gone, int8 still exports: calibration read only the training split.
    copy = tmp_path / "tfds"
    shutil.copytree(data_dir, copy)
    for test_file in copy.rglob("*-test.tfrecord*"):
        test_file.unlink()
    out = run("export.py", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'int8'}", "--formats=tflite_int8",
              "--verify_examples=0", f"--data_dir={copy}").stdout
    assert "verification skipped (--verify_examples=0)" in out
    card = json.loads((tmp_path / "int8" / "model_card.json").read_text())
    assert card["calibration"] == {"split": "train", "examples": 256} and card["verification"] == "skipped"
    # Without the training split, calibration is a one-line refusal naming the data dir, and nothing is written.
    for train_file in copy.rglob("*-train.tfrecord*"):
        train_file.unlink()
    last = refused(model_dir, tmp_path / "int8b", "--formats=tflite_int8", "--verify_examples=0",
                   f"--data_dir={copy}")
    assert "tflite_int8 is calibrated on the run's training images, which can't be read" in last
    assert f"--data_dir={copy}" in last


def test_tflites_native_lines_that_say_nothing_are_dropped(exported):
    out = exported[3]  # stdout and stderr of converting every format and running each on the test split
    assert "tflite_int8 |" in out and "fully_quantize" not in out and "XNNPACK delegate" not in out


def test_the_export_directory_is_as_readable_as_its_subfolders(exported):
    export_dir = exported[2]
    mask = os.umask(0o022)
    os.umask(mask)  # export.py ran under this umask too
    mode = os.stat(export_dir).st_mode & 0o777
    assert mode == 0o777 & ~mask == os.stat(export_dir / "variables").st_mode & 0o777, oct(mode)


def test_without_the_dataset_the_refusal_names_the_whole_prepare_command(exported, tmp_path):
    _, model_dir, _, _ = exported
    empty = tmp_path / "empty"
    empty.mkdir()
    last = refused(model_dir, tmp_path / "x", "--formats=all", f"--data_dir={empty}")
    assert last.startswith("error: tflite_int8 is calibrated on the run's training images, which can't be read")
    assert (f"`python -m data.prepare cifar10 --archive=PATH/cifar-10-binary.tar.gz --data_dir={empty}`); the run "
            f"recorded --data_dir={empty}") in last, last


def refused(model_dir, export_dir, *flags, env=None):
    """Runs export.py expecting a refusal: returns its last stderr line, after checking that nothing was left."""
    parent = os.path.dirname(export_dir)
    before = set(os.listdir(parent))
    result = subprocess.run([sys.executable, "export.py", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                             *flags], capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert set(os.listdir(parent)) == before  # no export directory, no staging directory
    return result.stderr.strip().splitlines()[-1]


def test_refusals_are_one_line_and_leave_nothing(exported, tmp_path):
    _, model_dir, _, _ = exported
    assert refused(model_dir, tmp_path / "a", "--formats=tflite,coreml") == (
        "error: --formats takes saved_model, tflite, tflite_fp16, tflite_int8, onnx or all, not coreml")
    # A runtime that is not installed (hidden from this process).
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'onnxruntime':\n            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    assert refused(model_dir, tmp_path / "b", "--formats=onnx", env=env) == (
        "error: --formats=onnx needs onnxruntime, not installed here: pip install -r requirements.txt")
    assert "applies to the SavedModel only" in refused(model_dir, tmp_path / "c", "--formats=tflite",
                                                        "--dtype=bfloat16")
    # A deliberately broken model: the float32 TFLite file without its normalization fails its thresholds.
    last = refused(model_dir, tmp_path / "d", "--formats=saved_model,tflite", "--debug_break_format=tflite",
                   "--verify_examples=200")
    assert last.startswith("error: tflite failed verification on 200 test images: agreement ")
    assert "is below its threshold 0.999; nothing was written" in last
