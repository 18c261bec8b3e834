"""Published ImageNet weights: a slim-named TF1 checkpoint and a Keras-applications-layout HDF5 file, each written
here with random weights and realistic batch-norm statistics, import into our network by name; the imported
network equals an independent plain-TF reference of slim's graph; pretrained.py's run directory feeds predict.py,
export.py, eval and fine-tuning; every refusal is one line and writes nothing."""
import csv
import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tensorflow as tf

from data import imagenet
from model import pretrained, weight_files
from support import ROOT, mock_tfds, run
from training.evaluation import checkpoint_eval

UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
SCOPE = "resnet_v2_50"
STAGE_DEPTHS = (256, 512, 1024, 2048)


def slim_arrays(units=UNITS[50], seed=0, scope=SCOPE):
    """{slim variable name: array} of a bottleneck ResNet V2 with 1001 classes. Kernels are He-scaled, the last
    conv of each unit small (as in trained nets, so 16 residual additions keep activations of order 1), and
    batch-norm statistics realistic: positive variances, means and offsets of either sign."""
    rng = np.random.default_rng(seed)
    arrays = {}

    def conv(name, k, c_in, c_out, bias, scale=1.0):
        arrays[f"{name}/weights"] = (rng.standard_normal((k, k, c_in, c_out)) * scale *
                                     np.sqrt(2.0 / (k * k * c_in))).astype(np.float32)
        if bias:
            arrays[f"{name}/biases"] = (0.1 * rng.standard_normal(c_out)).astype(np.float32)

    def bn(name, c):
        arrays[f"{name}/gamma"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        arrays[f"{name}/beta"] = (0.2 * rng.standard_normal(c)).astype(np.float32)
        arrays[f"{name}/moving_mean"] = (0.5 * rng.standard_normal(c)).astype(np.float32)
        arrays[f"{name}/moving_variance"] = rng.uniform(0.5, 3.0, c).astype(np.float32)

    conv(f"{scope}/conv1", 7, 3, 64, bias=True)
    depth_in = 64
    for b, (n, depth) in enumerate(zip(units, STAGE_DEPTHS), start=1):
        for u in range(1, n + 1):
            p = f"{scope}/block{b}/unit_{u}/bottleneck_v2"
            bn(f"{p}/preact", depth_in)
            if u == 1:
                conv(f"{p}/shortcut", 1, depth_in, depth, bias=True)
            conv(f"{p}/conv1", 1, depth_in, depth // 4, bias=False)
            bn(f"{p}/conv1/BatchNorm", depth // 4)
            conv(f"{p}/conv2", 3, depth // 4, depth // 4, bias=False)
            bn(f"{p}/conv2/BatchNorm", depth // 4)
            conv(f"{p}/conv3", 1, depth // 4, depth, bias=True, scale=0.2)
            depth_in = depth
    bn(f"{scope}/postnorm", 2048)
    conv(f"{scope}/logits", 1, 2048, 1001, bias=True)
    return arrays


def slim_reference(arrays, images, units=UNITS[50], scope=SCOPE):
    """slim's resnet_v2 graph, written out in plain TF ops from the arrays by their slim names (not our model):
    conv2d_same's explicit padding for strided convs, SAME max-pooling after the stem, the stride on each stage's
    last unit, a 1x1 conv classifier over 1001 classes."""
    w = {k: tf.constant(v) for k, v in arrays.items()}

    def bn(x, s):
        return tf.nn.batch_normalization(x, w[f"{s}/moving_mean"], w[f"{s}/moving_variance"], w[f"{s}/beta"],
                                         w[f"{s}/gamma"], 1e-5)

    def conv(x, s, stride=1):
        kernel = w[f"{s}/weights"]
        if stride == 1:
            y = tf.nn.conv2d(x, kernel, 1, "SAME")
        else:
            pad = kernel.shape[0] - 1
            x = tf.pad(x, [[0, 0], [pad // 2, pad - pad // 2], [pad // 2, pad - pad // 2], [0, 0]])
            y = tf.nn.conv2d(x, kernel, stride, "VALID")
        return y + w[f"{s}/biases"] if f"{s}/biases" in w else y

    x = tf.nn.max_pool2d(conv(images, f"{scope}/conv1", 2), 3, 2, "SAME")
    for b, n in enumerate(units, start=1):
        for u in range(1, n + 1):
            p = f"{scope}/block{b}/unit_{u}/bottleneck_v2"
            stride = 2 if u == n and b < 4 else 1
            preact = tf.nn.relu(bn(x, f"{p}/preact"))
            if f"{p}/shortcut/weights" in w:
                shortcut = conv(preact, f"{p}/shortcut", stride)
            else:
                shortcut = x if stride == 1 else x[:, ::stride, ::stride, :]
            y = tf.nn.relu(bn(conv(preact, f"{p}/conv1"), f"{p}/conv1/BatchNorm"))
            y = tf.nn.relu(bn(conv(y, f"{p}/conv2", stride), f"{p}/conv2/BatchNorm"))
            x = shortcut + conv(y, f"{p}/conv3")
    x = tf.reduce_mean(tf.nn.relu(bn(x, f"{scope}/postnorm")), [1, 2], keepdims=True)
    return tf.squeeze(conv(x, f"{scope}/logits"), [1, 2]).numpy()


def write_slim(arrays, prefix, version=tf.compat.v1.train.SaverDef.V2):
    """A TF1 checkpoint as slim's training wrote them (with its global_step)."""
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    with tf.Graph().as_default():
        for name, value in arrays.items():
            tf.compat.v1.Variable(value, name=name)
        tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver(write_version=version)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, prefix, write_meta_graph=False, write_state=False)
    return prefix


# slim name -> Keras applications name, as the issue and keras/src/applications/resnet.py spell them.
KERAS_RULES = [
    (r"^block(\d+)/unit_(\d+)/bottleneck_v2/preact/", lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_preact_bn/"),
    (r"^block(\d+)/unit_(\d+)/bottleneck_v2/shortcut/", lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_0_conv/"),
    (r"^block(\d+)/unit_(\d+)/bottleneck_v2/conv(\d)/BatchNorm/",
     lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_{m[3]}_bn/"),
    (r"^block(\d+)/unit_(\d+)/bottleneck_v2/conv(\d)/", lambda m: f"conv{int(m[1]) + 1}_block{m[2]}_{m[3]}_conv/"),
    (r"^conv1/", lambda m: "conv1_conv/"), (r"^postnorm/", lambda m: "post_bn/"),
    (r"^logits/", lambda m: "predictions/"),
]
KERAS_WEIGHT = {"weights": "kernel", "biases": "bias"}


def keras_name(slim_name, scope=SCOPE):
    name = slim_name[len(scope) + 1:]
    for pattern, replace in KERAS_RULES:
        if re.match(pattern, name):
            name = re.sub(pattern, replace, name)
            break
    layer, weight = name.rsplit("/", 1)
    return layer, KERAS_WEIGHT.get(weight, weight)


def write_keras(arrays, path, notop=False, seed=0):
    """A legacy Keras HDF5 weight file (root attribute layer_names, a group per layer with weight_names, Keras 2's
    'layer/kernel:0' names), 1000 classes, its layers in a shuffled order; a few weightless layers as Keras has."""
    layers = {}
    for name, value in arrays.items():
        layer, weight = keras_name(name)
        if layer == "predictions":
            if notop:
                continue
            value = value.reshape(value.shape[-2:])[..., 1:] if weight == "kernel" else value[1:]
        layers.setdefault(layer, []).append((f"{layer}/{weight}:0", value))
    layers.update({"input_1": [], "conv1_pad": [], "pool1_pad": [], "pool1_pool": [], "avg_pool": []})
    order = list(layers)
    np.random.default_rng(seed).shuffle(order)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in order]
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.2.4"
        for layer in order:
            group = f.create_group(layer)
            group.attrs["weight_names"] = [n.encode() for n, _ in layers[layer]]
            for name, value in layers[layer]:
                group.create_dataset(name, data=value)
    return path


def central_crop_of_256_px_image(seed=1):
    """A 256x256 image's central 224 crop in [-1, 1], batch of 2."""
    image = np.random.default_rng(seed).uniform(0, 255, (2, 256, 256, 3)).astype(np.float32)
    return (image[:, 16:240, 16:240] - 127.5) / 127.5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("weights")
    arrays = slim_arrays()
    slim = write_slim(arrays, str(directory / "slim" / "resnet_v2_50.ckpt"))
    keras_file = write_keras(arrays, str(directory / "resnet50v2_weights_tf_dim_ordering_tf_kernels.h5"))
    return {"arrays": arrays, "slim": slim, "keras": keras_file, "dir": directory}


def our_layer(slim_name, scope=SCOPE):
    """Independently of model/pretrained_names.py: the layer of ours a slim variable belongs to, and its weight."""
    name = slim_name[len(scope) + 1:]
    layer, weight = name.rsplit("/", 1)
    m = re.match(r"block(\d+)/unit_(\d+)/bottleneck_v2/(.*)", layer)
    if m:
        part = {"preact": "preact_bn", "conv1/BatchNorm": "conv1_bn", "conv2/BatchNorm": "conv2_bn"}.get(m[3], m[3])
        layer = f"stage{m[1]}_unit{m[2]}_{part}"
    else:
        layer = {"conv1": "stem_conv", "postnorm": "postnorm_bn", "logits": "logits"}[layer]
    return layer, KERAS_WEIGHT.get(weight, weight)


def assert_landed_by_name(net, arrays, top=True):
    checked = 0
    for name, value in arrays.items():
        layer, weight = our_layer(name)
        if layer == "logits":
            if not top:
                continue
            value = value.reshape(value.shape[-2:])[..., 1:] if weight == "kernel" else value[1:]
        variable = next(v for v in net.get_layer(layer).weights if v.name == weight)
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=name)
        checked += 1
    assert checked == len(net.weights)


def test_slim_checkpoint_lands_by_name_and_equals_the_reference(files):
    net, imported = pretrained.load("slim:" + files["slim"])
    assert (imported.family, imported.depth, imported.include_top, imported.file_classes) == ("slim", 50, True, 1001)
    assert set(imported.sha256) == {"resnet_v2_50.ckpt.index", "resnet_v2_50.ckpt.data-00000-of-00001"}
    assert_landed_by_name(net, files["arrays"])
    images = central_crop_of_256_px_image()
    reference = slim_reference(files["arrays"], images)
    assert np.abs(reference).max() > 1.0  # logits of order 1 and more: a real comparison at 1e-4
    logits = net(images, training=False).numpy()
    np.testing.assert_allclose(logits, reference[:, 1:], atol=1e-4, rtol=0)  # class i: slim's i + 1


def test_keras_file_in_shuffled_order_lands_by_name_and_equals_the_reference(files):
    net, imported = pretrained.load(files["keras"])
    assert (imported.family, imported.depth, imported.file_classes) == ("keras", 50, 1000)
    assert_landed_by_name(net, files["arrays"])
    images = central_crop_of_256_px_image()
    np.testing.assert_allclose(net(images, training=False).numpy(), slim_reference(files["arrays"], images)[:, 1:],
                               atol=1e-4, rtol=0)


def test_keras_agrees_this_file_is_its_layout(files, tmp_path):
    """Keras' own loader reads the test's file by layer name into keras.applications.ResNet50V2."""
    import keras
    from keras.src.legacy.saving import legacy_h5_format
    theirs = keras.applications.ResNet50V2(weights=None, classifier_activation=None)
    with h5py.File(files["keras"], "r") as f:
        legacy_h5_format.load_weights_from_hdf5_group_by_name(f, theirs)
    np.testing.assert_array_equal(theirs.get_layer("conv3_block2_2_conv").kernel.numpy(),
                                  files["arrays"][f"{SCOPE}/block2/unit_2/bottleneck_v2/conv2/weights"])


def test_notop_file_v1_checkpoint_and_folder_source(files, tmp_path):
    notop = write_keras(files["arrays"], str(tmp_path / "notop.h5"), notop=True)
    net, imported = pretrained.load(notop)
    assert not imported.include_top and net.output.shape[1:] == (2048,)
    assert_landed_by_name(net, files["arrays"], top=False)
    v1 = write_slim(files["arrays"], str(tmp_path / "v1" / "resnet_v2_50.ckpt"), tf.compat.v1.train.SaverDef.V1)
    assert os.listdir(tmp_path / "v1") == ["resnet_v2_50.ckpt"]  # the old format: one file
    for source in ("slim:" + v1, "slim:" + str(tmp_path / "v1"), "slim:" + os.path.dirname(files["slim"])):
        net, imported = pretrained.load(source, depth=50)
        assert imported.depth == 50
    np.testing.assert_array_equal(net.get_layer("stage4_unit3_conv3").bias.numpy(),
                                  files["arrays"][f"{SCOPE}/block4/unit_3/bottleneck_v2/conv3/biases"])


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_depth_is_read_off_the_names(depth):
    shapes = {n: v.shape for n, v in slim_arrays(UNITS[depth], scope=f"resnet_v2_{depth}").items()} \
        if depth == 50 else {f"resnet_v2_{depth}/block{b}/unit_{u}/bottleneck_v2/conv1/weights": (1, 1, 1, 1)
                             for b, n in enumerate(UNITS[depth], 1) for u in range(1, n + 1)}
    weights = weight_files.WeightFile("slim", "x.ckpt", shapes, None, ())
    assert pretrained.units_per_stage(weights) == UNITS[depth]


def test_keras_hashes_are_keras_own():
    from keras.src.applications import resnet
    for name, hashes in weight_files.KERAS_FILES.items():
        assert resnet.WEIGHTS_HASHES[name] == hashes
    assert weight_files.KERAS_BASE_URL == resnet.BASE_WEIGHTS_PATH


def test_keras_name_reads_the_cache_md5_checked(files, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cached = tmp_path / "keras" / "models" / "resnet50v2_weights_tf_dim_ordering_tf_kernels.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(open(files["keras"], "rb").read())
    with pytest.raises(pretrained.WeightsError, match=f"{cached} is damaged .*: delete it"):
        pretrained.load("keras:resnet50v2")  # the test's random weights are not the published file
    monkeypatch.setitem(weight_files.KERAS_FILES, "resnet50v2", (weight_files._md5(str(cached)), "unused"))
    net, imported = pretrained.load("keras:resnet50v2")
    assert imported.path == str(cached) and imported.md5 == weight_files._md5(str(cached))


def test_class_names():
    names = imagenet.class_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[0] == "tench, Tinca tinca" and names[207] == "golden retriever" and names[281] == "tabby, tabby cat"
    assert imagenet.classes()[207][0] == "n02099601"
    import tensorflow_datasets as tfds  # label order: tfds' imagenet2012 (sorted WordNet ids)
    wnids = open(os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012", "labels.txt")).read().split()
    assert [w for w, _ in imagenet.classes()] == wnids


def pretrained_py(*args, env=None):
    return subprocess.run([sys.executable, "pretrained.py", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def imported_run(files, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("imported") / "r50")
    result = pretrained_py(f"--source=slim:{files['slim']}", f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("imported slim ResNet V2 50 (")
    return model_dir


def test_run_directory_of_imported_weights(imported_run, files):
    assert sorted(os.listdir(imported_run)) == ["checkpoint", "ckpt-0.data-00000-of-00001", "ckpt-0.index",
                                                "config.json"]
    assert not [f for f in os.listdir(os.path.dirname(imported_run)) if "importing" in f]
    record = json.load(open(os.path.join(imported_run, "config.json")))
    assert record["config"]["depth"] == 50 and record["config"]["image_size"] == 224
    assert record["config"]["imported_from"] == f"slim:{files['slim']}"
    assert record["dataset"]["class_names"][207] == "golden retriever" and len(record["dataset"]["class_names"]) == 1000
    assert record["dataset"]["mean"] == [127.5] * 3 and record["dataset"]["std"] == [127.5] * 3
    assert record["pretrained"]["sha256"]["resnet_v2_50.ckpt.index"] == weight_files.sha256(files["slim"] + ".index")
    assert "[-1, 1]" in record["pretrained"]["preprocessing"]["input"]


def test_eval_uses_the_weights_preprocessing(imported_run, tmp_path):
    """eval.py --dataset=imagenet2012 on tfds' (mocked) ImageNet: the run's [-1, 1] scaling and class names,
    not tfds' ImageNet mean / std and WordNet ids."""
    with mock_tfds(tmp_path, "imagenet2012", num_examples=4, splits=("train", "validation")):
        config = checkpoint_eval.EvalConfig(imported_run, dataset="imagenet2012", data_dir=str(tmp_path), batch_size=4)
        info = checkpoint_eval.eval_info(config, json.load(open(os.path.join(imported_run, "config.json")))["config"])
        assert info.mean == (127.5,) * 3 and info.class_names[207] == "golden retriever"
        metrics = checkpoint_eval.run(config, out=lambda line: None)
    assert metrics["num_examples"] == 4 and metrics["step"] == 0


def test_predict_and_export_agree_on_imagenet_names(imported_run, tmp_path):
    rng = np.random.default_rng(3)
    paths = [str(tmp_path / f"photo{i}.jpg") for i in range(3)]
    for path, (h, w) in zip(paths, [(256, 256), (300, 400), (180, 240)]):
        tf.io.write_file(path, tf.io.encode_jpeg(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)))
    output = tmp_path / "preds.csv"
    run("predict.py", f"--model_dir={imported_run}", *paths, f"--output={output}", "--top_k=3")
    with open(output, newline="") as f:
        rows = {r[0]: r for r in list(csv.reader(f))[1:]}
    export_dir = tmp_path / "exported"
    run("export.py", f"--model_dir={imported_run}", f"--export_dir={export_dir}", "--top_k=3")
    served = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    outputs = served(image_bytes=tf.constant([open(p, "rb").read() for p in paths]))
    assert outputs["probabilities"].shape == (3, 1000)
    for i, path in enumerate(paths):
        names = [n.decode() for n in outputs["top_k_class_names"].numpy()[i]]
        assert rows[path][1:7:2] == names and all(n in imagenet.class_names() for n in names)
        np.testing.assert_allclose([float(p) for p in rows[path][2:7:2]], outputs["top_k_probabilities"].numpy()[i],
                                   atol=2e-6)


def refused(result, model_dir=None):
    """The one error line (TensorFlow's own start-up log lines may come before it), with nothing written."""
    ours = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if "error" in line.lower()
            and not re.match(r"[IEW]\d{4} ", line)]  # TF's C++ log lines: I0000 00:00:... cuda_platform.cc:52]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(ours) == 1 and ours[0].startswith("error: ") and result.stderr.strip().endswith(ours[0]), ours
    if model_dir:
        assert not os.path.exists(model_dir) or not os.listdir(model_dir)
        assert not [f for f in os.listdir(os.path.dirname(model_dir)) if "importing" in f]
    return ours[0]


def inception_checkpoint(directory):
    return write_slim({"InceptionV3/Conv2d_1a_3x3/weights": np.zeros((3, 3, 3, 32), np.float32),
                       "InceptionV3/Logits/Conv2d_1c_1x1/biases": np.zeros(1001, np.float32)},
                      str(directory / "inception" / "inception_v3.ckpt"))


def truncated(path, out):
    data = open(path, "rb").read()
    with open(out, "wb") as f:
        f.write(data[:len(data) // 2])
    return out


def damaged_slim(files, directory):
    """The slim checkpoint with its data file cut in half (its index intact)."""
    prefix = str(directory / "damaged" / "resnet_v2_50.ckpt")
    os.makedirs(os.path.dirname(prefix))
    open(prefix + ".index", "wb").write(open(files["slim"] + ".index", "rb").read())
    truncated(files["slim"] + ".data-00000-of-00001", prefix + ".data-00000-of-00001")
    return prefix


REFUSALS = {
    "wrong depth": (lambda files, d: [f"--source=slim:{files['slim']}", "--depth=101"],
                    r"does not fit a ResNet V2 101: it has no resnet_v2_50/block3/unit_7/bottleneck_v2/preact/gamma "
                    r"\(the file has 3, 4, 6, 3 units per stage: --depth=50\)"),
    "not a ResNet V2": (lambda files, d: [f"--source=slim:{inception_checkpoint(d)}"],
                        r"is not a ResNet V2 slim file: InceptionV3/Conv2d_1a_3x3/weights does not fit"),
    "unknown keras name": (lambda files, d: ["--source=keras:resnet50"],
                           r"unknown keras:resnet50; Keras applications publishes ResNet V2 weights as resnet50v2, "),
    "offline download": (lambda files, d: ["--source=keras:resnet101v2_notop"],
                         r"can't download https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
                         r"resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5 \(.*\); on a machine without "
                         r"network, download it elsewhere and put it at .*/keras_home/models/"
                         r"resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5$"),
    "damaged h5": (lambda files, d: [f"--source={truncated(files['keras'], str(d / 'cut.h5'))}"],
                   r"cut.h5 is not a readable Keras weight file \(|cut.h5 is damaged: "),
    "damaged checkpoint": (lambda files, d: [f"--source=slim:{damaged_slim(files, d)}"],
                           r"can't read the checkpoint .*damaged/resnet_v2_50.ckpt: |damaged/resnet_v2_50.ckpt is "
                           r"damaged: "),
    "directory holding a run": (lambda files, d: [f"--source=slim:{files['slim']}"],
                                r"already exists and is not empty"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_are_one_line_and_write_nothing(files, tmp_path, case, imported_run):
    arguments, message = REFUSALS[case]
    model_dir = imported_run if case == "directory holding a run" else str(tmp_path / "out" / "run")
    os.makedirs(os.path.dirname(model_dir), exist_ok=True)
    before = sorted(os.listdir(model_dir)) if os.path.exists(model_dir) else None
    result = pretrained_py(*arguments(files, tmp_path), f"--model_dir={model_dir}",
                           env={"KERAS_HOME": str(tmp_path / "keras_home")})
    if case == "directory holding a run":
        line = refused(result)
        assert sorted(os.listdir(model_dir)) == before
    else:
        line = refused(result, model_dir)
    assert re.search(message, line), line


def test_depth_that_has_no_place_for_the_file(files):
    with pytest.raises(pretrained.WeightsError, match=r"does not fit a ResNet V2 152: it has no "
                       r"resnet_v2_50/block2/unit_5/bottleneck_v2/preact/gamma"):
        pretrained.load("slim:" + files["slim"], depth=152)
    arrays = dict(files["arrays"])
    arrays[f"{SCOPE}/block4/unit_4/bottleneck_v2/conv1/weights"] = np.zeros((1, 1, 2048, 512), np.float32)
    weights = weight_files.WeightFile("slim", "extra.ckpt", {k: v.shape for k, v in arrays.items()}, arrays.get, ())
    with pytest.raises(pretrained.WeightsError, match=r"extra.ckpt has 3, 4, 6, 4 units per stage, which fits no"):
        pretrained.load_weights(weights)
    with pytest.raises(pretrained.WeightsError, match=r"nothing of ours takes its resnet_v2_50/block4/unit_4/"
                       r"bottleneck_v2/conv1/weights \(the file has 3, 4, 6, 4 units per stage\)"):
        pretrained.load_weights(weights, depth=50)


def photo_folder(root):
    """3 classes of 120x100 JPEGs with a class colour plus noise: 6 train and 2 test images each."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 2)):
        for label, colour in enumerate(((200, 40, 40), (40, 200, 40), (40, 40, 200))):
            os.makedirs(root / split / f"class{label}", exist_ok=True)
            for i in range(count):
                image = np.clip(np.array(colour) + rng.normal(0, 30, (100, 120, 3)), 0, 255).astype(np.uint8)
                tf.io.write_file(str(root / split / f"class{label}" / f"{i}.jpg"), tf.io.encode_jpeg(image))
    return root


def fine_tune_args(folder, model_dir, init, steps, *extra):
    return (f"--dataset=folder:{folder}", f"--model_dir={model_dir}", f"--init_checkpoint={init}",
            "--image_size=96", "--batch_size=6", f"--train_steps={steps}", "--steps_per_loop=1",
            "--log_every_steps=1", "--learning_rate=0.05", *extra)


def test_fine_tune_frozen_from_the_imported_run_trains_resumes_and_evaluates(imported_run, files, tmp_path):
    from inference import trained
    folder = photo_folder(tmp_path / "photos")
    model_dir = str(tmp_path / "finetuned")
    first = run("train.py", *fine_tune_args(folder, model_dir, imported_run, 3, "--freeze_backbone")).stdout
    assert "warm-started" in first and "a new 3-class head (the checkpoint's has 1000); backbone frozen" in first
    resumed = run("train.py", *fine_tune_args(folder, model_dir, imported_run, 6, "--freeze_backbone")).stdout
    assert f"resuming from {model_dir}/ckpt-3 at step 3" in resumed
    assert resumed.strip().splitlines()[-1].startswith("final: step 6  test top-1 ")
    record = json.load(open(os.path.join(model_dir, "config.json")))
    assert record["dataset"]["mean"] == [127.5] * 3 and record["dataset"]["std"] == [127.5] * 3  # not the folder's
    evaluated = run("eval.py", f"--model_dir={model_dir}").stdout
    # At the checkpoint eval.py took: the best on the validation split, of the evaluations at steps 1-6.
    evaluated_step = re.search(r"^step (\d+): top-1 .* examples 6 ", evaluated, re.M)
    assert evaluated_step and 1 <= int(evaluated_step.group(1)) <= 6, evaluated
    tuned, imported = trained.load(model_dir).net, trained.load(imported_run).net
    for layer in tuned.layers:
        if layer.name != "logits":
            for a, b in zip(layer.weights, imported.get_layer(layer.name).weights):
                np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)  # BN statistics included
    head = [trained.load(model_dir, os.path.join(model_dir, f"ckpt-{s}")).net.get_layer("logits").kernel.numpy()
            for s in (3, 6)]
    assert not np.array_equal(*head)  # the head trained


def test_fine_tune_from_a_keras_file_trains_the_whole_net(files, tmp_path):
    folder = photo_folder(tmp_path / "photos")
    model_dir = str(tmp_path / "finetuned")
    out = run("train.py", *fine_tune_args(folder, model_dir, files["keras"], 2)).stdout
    # 270: every variable of ResNet-50 but the classifier's kernel and bias
    assert f"warm-started 270 variables from {files['keras']} (keras ImageNet weights, ResNet V2 50); " \
           "a new 3-class head (the checkpoint's has 1000)" in out
    from inference import trained
    stem = trained.load(model_dir).net.get_layer("stem_conv").kernel.numpy()
    imported = files["arrays"][f"{SCOPE}/conv1/weights"]
    assert not np.array_equal(stem, imported) and np.abs(stem - imported).max() < 0.05  # trained from there
