"""The chapter's other networks: published parameter counts, small-image variants and minimum sizes, one-line
errors, LRN and per-replica dropout, and one real train step of each under MirroredStrategy."""
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import model
from model import alexnet, dense_head
from training.compute import optimizer as optim, step as steps


def test_the_table_names_every_network_and_its_defaults():
    assert list(model.MODELS) == ["resnet_v2", "alexnet", "alexnet_lrn", "vgg16", "inception_v3"]
    assert {n: e.image_size for n, e in model.MODELS.items()} == {
        "resnet_v2": 224, "alexnet": 224, "alexnet_lrn": 224, "vgg16": 224, "inception_v3": 299}
    assert all(e.description and "\n" not in e.description for e in model.MODELS.values())


def test_vgg16_has_the_published_138_357_544_parameters():
    net, spec = model.create_model("vgg16", 1000, 224)
    assert model.parameter_counts(net) == (138_357_544, 138_357_544)
    assert (spec.family, spec.variant) == ("vgg", "imagenet")
    assert net.get_layer("block5_pool").output.shape[1:] == (7, 7, 512)
    assert [k.shape for k in model.weight_decay_variables(net)][-3:] == [(25088, 4096), (4096, 4096), (4096, 1000)]
    assert len(model.weight_decay_variables(net)) == 16  # 13 convolutions + 3 dense: VGG-16
    # Simonyan & Zisserman's 15.5 G multiply-adds; only Conv2D and Dense are counted.
    assert model.flops_per_image(net) == 15_470_264_320


def test_inception_v3_counts_as_keras_inception_v3_without_the_aux_head():
    ours, _ = model.create_model("inception_v3", 1000, 299)
    theirs = keras.applications.InceptionV3(include_top=True, weights=None)
    assert model.parameter_counts(ours) == model.parameter_counts(theirs) == (23_851_784, 23_817_352)
    assert model.flops_per_image(ours) == model.flops_per_image(theirs)
    assert model.flops_per_image(ours) / 1e9 == pytest.approx(5.71, abs=0.01)
    shapes = {f"mixed{i}": ours.get_layer(f"mixed{i}").output.shape[1:] for i in (2, 3, 7, 8, 10)}
    assert shapes == {"mixed2": (35, 35, 288), "mixed3": (17, 17, 768), "mixed7": (17, 17, 768),
                      "mixed8": (8, 8, 1280), "mixed10": (8, 8, 2048)}
    assert ours.get_layer("mixed4_7x7_1").kernel.shape == (1, 7, 128, 128)  # factorized 7x7
    assert not ours.get_layer("mixed0_1x1_bn").scale  # BN without gamma, as Keras (and slim) have it


def test_flops_of_an_asymmetric_convolution():
    inputs = keras.Input((17, 17, 3))
    net = keras.Model(inputs, keras.layers.Conv2D(4, (1, 7), padding="same")(inputs))
    assert model.flops_per_image(net) == 17 * 17 * (1 * 7) * 3 * 4


def test_alexnet_convolutions_up_to_pool5_as_the_chapter():
    net, spec = model.create_model("alexnet_lrn", 1000, 224, include_top=False)
    assert model.parameter_counts(net) == (2_469_696, 2_469_696)
    assert net.output.shape[1:] == (6, 6, 256) and net.layers[-1].name == "pool5"
    assert [net.get_layer(n).output.shape[1] for n in ("conv1", "pool1", "pool2")] == [56, 27, 13]
    assert {"lrn1", "lrn2"} <= {layer.name for layer in net.layers}
    plain, _ = model.create_model("alexnet", 1000, 224, include_top=False)
    assert not any("lrn" in layer.name for layer in plain.layers)
    assert model.parameter_counts(plain) == (2_469_696, 2_469_696)  # LRN has no weights
    full, _ = model.create_model("alexnet", 1000, 224)
    assert model.parameter_counts(full)[0] == 61_100_840  # + fc6 9216x4096, fc7 4096x4096, logits 4096x1000


def test_lrn_is_the_chapters_tf_nn_lrn():
    x = tf.random.normal((2, 5, 5, 16), stddev=10.0, seed=2)
    layer = alexnet.LocalResponseNormalization(**alexnet.LRN)
    expected = tf.nn.local_response_normalization(x, depth_radius=4, bias=1.0, alpha=0.001 / 9.0, beta=0.75)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)
    clone = alexnet.LocalResponseNormalization.from_config(layer.get_config())
    np.testing.assert_allclose(clone(x), expected, rtol=1e-6)


@pytest.mark.parametrize("name,pool5,fc6,params", [
    ("alexnet", (3, 3, 256), (2304, 512), 3_899_210),   # conv1 5x5 stride 1; 32 -> 15 -> 7 -> 3
    ("vgg16", (1, 1, 512), (512, 512), 15_245_130),     # the CIFAR VGG-16: 14.7 M in the convolutions
])
def test_small_image_variants(name, pool5, fc6, params):
    net, spec = model.create_model(name, 10, 32)
    assert spec.variant == "small-image variant" and spec.small
    last_pool = "pool5" if name == "alexnet" else "block5_pool"
    assert net.get_layer(last_pool).output.shape[1:] == pool5
    assert net.get_layer("fc6").kernel.shape == fc6
    assert model.parameter_counts(net)[0] == params
    assert net.get_layer("logits").dtype_policy.compute_dtype == "float32"


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "inception_v3"])
def test_minimum_image_size_is_tight(name):
    smallest = model.MODELS[name].min_image_size
    net, _ = model.create_model(name, 10, smallest, include_top=False)
    assert net.output.shape[1:3] == (1, 1)  # one pixel left before the classifier: one less can't work
    with pytest.raises(ValueError, match=f"at least {smallest} px") as error:
        model.check_model(name, smallest - 1)
    assert "\n" not in str(error.value)


def test_small_images_for_inception_are_refused_with_what_to_use():
    with pytest.raises(ValueError, match="inception_v3 needs images of at least 75 px, not 32.*resnet_v2"):
        model.create_model("inception_v3", 10, 32)


def test_errors_are_one_line():
    with pytest.raises(ValueError, match="unknown model 'vgg'; valid models: resnet_v2, alexnet, alexnet_lrn, vgg16"):
        model.check_model("vgg", 224)
    with pytest.raises(ValueError, match="valid depths"):
        model.check_model("resnet_v2", 32, depth=51)


def test_resnet_without_top_ends_at_the_pooled_features():
    net, _ = model.create_model("resnet_v2", 10, 32, depth=20, include_top=False)
    with_top, _ = model.create_model("resnet_v2", 10, 32, depth=20)
    assert net.output.shape[1:] == (64,) and net.layers[-1].name == "pool"
    assert model.parameter_counts(with_top)[0] - model.parameter_counts(net)[0] == 64 * 10 + 10


def test_resnet_through_the_table_is_create():
    net, spec = model.create_model("resnet_v2", 10, 32, depth=20)
    reference, reference_spec = model.create(20, 10, 32)
    assert spec == reference_spec == model.check_model("resnet_v2", 32, depth=20)
    assert model.parameter_counts(net) == model.parameter_counts(reference)
    assert model.describe(net, spec) == model.describe(reference, reference_spec)


def test_describe_every_network():
    for name, size in (("alexnet", 224), ("vgg16", 32), ("inception_v3", 75)):
        net, spec = model.create_model(name, 10, size)
        lines = model.describe(net, spec).splitlines()
        assert lines[0].startswith(f"{name}: {model.MODELS[name].description}")
        assert lines[-3] == "logits: (10,)"
        assert lines[-2] == f"flops per image: {model.flops_per_image(net) / 1e9:.3f} G multiply-adds"
        assert lines[-1] == "params: total={} trainable={}".format(*model.parameter_counts(net))


def test_summary_cli_for_the_chapters_alexnet():
    out = subprocess.run([sys.executable, "-m", "model", "--model=alexnet_lrn", "--noinclude_top"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    assert out[-3:] == ["features: (6, 6, 256)", "flops per image: 0.658 G multiply-adds",
                        "params: total=2469696 trainable=2469696"]


def test_dropout_masks_differ_between_replicas(two_replicas):
    # Keras' own Dropout gives both replicas the same mask (a SeedGenerator copied to each replica).
    with two_replicas.scope():
        layer = dense_head.Dropout(0.5)
    ones = tf.ones((4, 256))
    outputs = two_replicas.experimental_local_results(
        tf.function(lambda: two_replicas.run(lambda: layer(ones, training=True)))())
    first, second = (o.numpy() for o in outputs)
    assert not np.array_equal(first, second)
    assert set(np.unique(first)) == {0.0, 2.0} and 0.4 < (first == 0).mean() < 0.6
    np.testing.assert_array_equal(layer(ones, training=False), ones)


def test_checkpoints_hold_the_dropout_seed(tmp_path):
    # Keras leaves the seed state out of checkpoints: a resumed run would replay the first steps' masks.
    net, _ = model.create_model("alexnet", 3, 32)
    state = net.get_layer("dropout6").seed_generator.state
    net(tf.zeros((1, 32, 32, 3)), training=True)
    saved = state.numpy().copy()
    path = tf.train.Checkpoint(model=net).save(str(tmp_path / "ckpt"))
    net(tf.zeros((1, 32, 32, 3)), training=True)
    assert not np.array_equal(state.numpy(), saved)
    tf.train.Checkpoint(model=net).restore(path).assert_consumed()
    np.testing.assert_array_equal(state.numpy(), saved)
    assert len(net.weights) == 16  # and parameter counts don't see it


@pytest.mark.parametrize("name,size", [("alexnet_lrn", 32), ("vgg16", 32), ("inception_v3", 75)])
def test_one_train_step_under_mirrored_strategy(two_replicas, name, size):
    keras.utils.set_random_seed(1)
    with two_replicas.scope():
        net, _ = model.create_model(name, 3, size)
        opt = optim.create(optim.Schedule(base_lr=0.01, total_steps=1), momentum=0.9)
        opt.build(net.trainable_variables)
    before = [v.numpy().copy() for v in net.trainable_variables]
    train_step = steps.make_train_step(net, opt, global_batch_size=4, weight_decay=5e-4)
    images = tf.random.normal((4, size, size, 3), seed=3)
    labels = tf.constant([0, 1, 2, 1])
    dataset = two_replicas.experimental_distribute_dataset(tf.data.Dataset.from_tensors((images, labels)).unbatch()
                                                            .batch(4))

    @tf.function
    def run(batch):
        sums = two_replicas.run(train_step, args=(*batch, tf.constant(1, tf.int64)))
        return {k: two_replicas.reduce("SUM", v, axis=None) for k, v in sums.items()}

    sums = run(next(iter(dataset)))
    assert np.isfinite(sums["cross_entropy"].numpy()) and sums["examples"].numpy() == 4
    changed = [not np.allclose(b, v.numpy()) for b, v in zip(before, net.trainable_variables)]
    assert all(changed), [v.path for v, c in zip(net.trainable_variables, changed) if not c]
