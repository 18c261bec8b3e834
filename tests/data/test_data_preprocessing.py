"""Augmentations: shapes, how often they flip, what they crop, and that a seed fully determines them."""
import numpy as np
import tensorflow as tf

from data import preprocessing


def _ramp(height=32, width=32):
    """Pixel value grows left to right (10..250), so a horizontal flip is visible in any crop."""
    row = np.linspace(10, 250, width).astype(np.uint8)
    return tf.constant(np.broadcast_to(row[None, :, None], (height, width, 3)).copy())


def _seed(i):
    return tf.constant([7, i], tf.int64)


def test_pad_crop_flip_keeps_shape_flips_half_the_time_and_shifts_up_to_4_px():
    image = _ramp()
    flips, shifts = 0, set()
    draws = 400
    for i in range(draws):
        out = preprocessing.pad_crop_flip(image, _seed(i)).numpy()
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        row = out[16, :, 0]
        inside = np.flatnonzero(row)  # padding is zero, the image never is
        flips += bool(row[inside[0]] > row[inside[-1]])
        shifts.add((int(inside[0]), int(inside[-1])))
    # Binomial(400, 0.5) has sd 10: 0.4..0.6 is a 4-sd band.
    assert 0.4 < flips / draws < 0.6
    assert len(shifts) >= 4  # the crop offset is random too (9 offsets per axis)


def test_augmentation_is_a_function_of_the_seed_eagerly_and_in_tf_data():
    image = tf.constant(np.random.RandomState(0).randint(0, 256, (32, 32, 3)), tf.uint8)
    eager = [preprocessing.pad_crop_flip(image, _seed(i)).numpy() for i in range(8)]
    in_data = tf.data.Dataset.range(8).map(lambda i: preprocessing.pad_crop_flip(image, tf.stack([7, i])))
    for a, b in zip(eager, in_data.as_numpy_iterator()):
        np.testing.assert_array_equal(a, b)
    assert len({a.tobytes() for a in eager}) == 8  # and different seeds give different results


def test_random_resized_crop_decodes_the_same_window_from_jpeg_and_png():
    pixels = tf.constant(np.random.RandomState(1).randint(0, 256, (60, 90, 3)), tf.uint8)
    jpeg = tf.io.encode_jpeg(pixels, quality=95, chroma_downsampling=False)  # no chroma smear at crop edges
    png = tf.io.encode_png(tf.io.decode_jpeg(jpeg))  # the very pixels the JPEG decodes to, losslessly
    for i in range(5):
        from_jpeg = preprocessing.random_resized_crop_flip(jpeg, _seed(i), 24)
        from_png = preprocessing.random_resized_crop_flip(png, _seed(i), 24)
        assert from_jpeg.shape == (24, 24, 3) and from_jpeg.dtype == tf.uint8
        # Their resizes differ by under 1 level, so their roundings by at most 2.
        np.testing.assert_allclose(from_jpeg.numpy().astype(int), from_png.numpy().astype(int), atol=2)
    crops = {preprocessing.random_resized_crop_flip(jpeg, _seed(i), 24).numpy().tobytes() for i in range(5)}
    assert len(crops) == 5


def test_random_resized_crop_handles_grayscale_rgba_and_gif():
    gray = tf.io.encode_png(tf.fill([50, 70, 1], tf.constant(100, tf.uint8)))
    rgba = tf.io.encode_png(tf.fill([50, 70, 4], tf.constant(100, tf.uint8)))
    gray_jpeg = tf.io.encode_jpeg(tf.fill([50, 70, 1], tf.constant(100, tf.uint8)))
    for encoded in (gray, rgba, gray_jpeg):
        out = preprocessing.random_resized_crop_flip(encoded, _seed(0), 16)
        assert out.shape == (16, 16, 3)
        np.testing.assert_allclose(out, 100, atol=2)


def test_center_crop_keeps_the_middle_and_is_deterministic():
    # A white 72x72 square inside a 4-px black frame: resized to 19 px and center-cropped to 16, the crop
    # (the central 84%) sees only white; a plain resize of the whole image would see the frame.
    image = np.zeros([80, 80, 3], np.uint8)
    image[4:76, 4:76] = 255
    encoded = tf.io.encode_png(image)
    crop = preprocessing.resize_center_crop(encoded, 16)
    assert crop.shape == (16, 16, 3)
    assert float(tf.reduce_mean(crop)) > 245
    np.testing.assert_array_equal(crop, preprocessing.resize_center_crop(encoded, 16))


def test_center_crop_of_a_wide_image_is_square_from_its_middle():
    image = np.zeros([40, 120, 3], np.uint8)
    image[:, 50:70] = 255  # a white stripe in the middle column band
    crop = preprocessing.resize_center_crop(tf.io.encode_png(image), 16).numpy()
    assert crop.shape == (16, 16, 3)
    column_means = crop[:, :, 0].mean(axis=0)
    assert column_means[8] > 200 and column_means[0] < 50 and column_means[-1] < 50


def test_normalize_uses_per_channel_mean_and_std():
    image = tf.constant([[[10, 20, 30]]], tf.uint8)
    out = preprocessing.normalize(image, (10.0, 10.0, 10.0), (1.0, 2.0, 4.0))
    np.testing.assert_allclose(out, [[[0.0, 5.0, 5.0]]])


def test_eval_image_passes_a_model_size_small_image_unchanged_and_fits_other_sizes():
    mean, std = (100.0, 110.0, 120.0), (50.0, 60.0, 70.0)
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (32, 32, 3)), tf.uint8)
    # Through a tf.function with an unknown shape, as predict.py and the exported model call it.
    fn = tf.function(lambda x: preprocessing.eval_image(x, 32, True, mean, std),
                     input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    # Pixels unchanged; the normalization may differ by an ulp inside a graph (grappler rewrites the division).
    np.testing.assert_allclose(fn(image), preprocessing.normalize(image, mean, std), rtol=0, atol=1e-6)
    fit = tf.function(lambda x: preprocessing.fit_small(x, 32), input_signature=[tf.TensorSpec([None, None, 3],
                                                                                              tf.uint8)])
    np.testing.assert_array_equal(fit(image), image)
    assert fn(_ramp(90, 40)).shape == (32, 32, 3)  # squeezed to the model's size, as folder datasets store them


def test_eval_image_of_a_large_image_is_the_eval_pipelines_center_crop():
    image = _ramp(300, 200)
    encoded = tf.io.encode_png(image)
    expected = preprocessing.normalize(preprocessing.resize_center_crop(encoded, 224), (0, 0, 0), (1, 1, 1))
    np.testing.assert_array_equal(preprocessing.eval_image(image, 224, False, (0, 0, 0), (1, 1, 1)), expected)


def _previous_random_resized_crop_flip(encoded, seed, image_size):
    """random_resized_crop_flip as it was before it returned uint8 (commit fcd32bd): float32 [0, 255]."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    box = preprocessing._crop_window(tf.image.extract_jpeg_shape(encoded), crop_seed)
    crop = tf.image.decode_and_crop_jpeg(encoded, box, channels=3)
    resized = tf.image.resize(crop, [image_size, image_size], method="bilinear")
    return tf.image.stateless_random_flip_left_right(resized, flip_seed)


def test_the_training_crop_is_the_previous_float_crop_rounded_on_real_photographs():
    from data.benchmark import photos
    sources = photos.source_photos()
    differences = []
    for k, name in enumerate(("astronaut", "chelsea", "coffee", "retina")):
        jpeg = tf.io.encode_jpeg(sources[name], quality=90)
        for i in range(10):
            seed = tf.constant([k, i], tf.int64)
            new = preprocessing.random_resized_crop_flip(jpeg, seed, 64)
            old = _previous_random_resized_crop_flip(jpeg, seed, 64).numpy()
            assert new.dtype == tf.uint8 and new.shape == (64, 64, 3)
            differences.append(new.numpy().astype(np.float64) - old)
    differences = np.stack(differences)
    # The same window, resize and flip; only the rounding to the nearest level, which is unbiased.
    assert np.abs(differences).max() <= 0.5 + 1e-3
    assert abs(differences.mean()) < 0.01
