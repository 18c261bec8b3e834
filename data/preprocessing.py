"""Image augmentations and eval transforms. Each is a function of (image, seed) built from stateless random ops,
so it gives the same result eagerly and inside tf.data, and a pipeline using it can be resumed exactly."""
import math

import tensorflow as tf

CIFAR_PAD = 4  # pixels of zero padding before the random crop back to the original size
# Inception-style crop: a box covering 8-100% of the image area with aspect ratio 3/4-4/3.
CROP_AREA_RANGE = (0.08, 1.0)
CROP_ASPECT_RANGE = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10  # after 10 failed draws the whole image is used
EVAL_CROP_FRACTION = 0.875  # eval: shorter side resized to image_size / 0.875 (224 -> 256), then center crop
TTA_MODES = ("none", "flip", "flip+crops")  # test-time augmentation: the image and its mirror; and 5 crops of each


def normalize(image, mean, std):
    """uint8 or float image in [0, 255] -> float32 with per-channel zero mean and unit std."""
    return (tf.cast(image, tf.float32) - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def pad_crop_flip(image, seed):
    """CIFAR-style training augmentation: zero-pad by 4, random crop back to the input size, random flip."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    padded = tf.pad(image, [[CIFAR_PAD, CIFAR_PAD], [CIFAR_PAD, CIFAR_PAD], [0, 0]])
    cropped = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(cropped, flip_seed)


def random_resized_crop_flip(encoded, seed, image_size: int):
    """ImageNet-style training augmentation of an encoded image: a random Inception-style crop (decoding only
    that window when the image is a JPEG), resized to image_size x image_size, and a random flip.
    Returns uint8: the bilinear resize rounded to the nearest level (at most 0.5 from it), so that a batch is a
    quarter of float32's bytes on its way to the device, and the normalization runs there (a per-channel
    broadcast of 150,528 floats per 224-px image took 0.4 ms of one core here, a third of the pipeline)."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    resized = tf.image.resize(decode_random_crop(encoded, crop_seed), [image_size, image_size], method="bilinear")
    rounded = tf.cast(resized + 0.5, tf.uint8)  # bilinear weights sum to 1: no value leaves [0, 255]
    return tf.image.stateless_random_flip_left_right(rounded, flip_seed)


def decode_random_crop(encoded, crop_seed):
    """The random Inception-style crop of an encoded image, uint8 [h, w, 3]: a JPEG decodes only that window."""
    def crop_jpeg():
        box = _crop_window(tf.image.extract_jpeg_shape(encoded), crop_seed)
        return tf.image.decode_and_crop_jpeg(encoded, box, channels=3)

    def crop_other():  # PNG, BMP, GIF from folders: no partial decoding, so decode everything and slice
        image = decode(encoded)
        offset_y, offset_x, height, width = tf.unstack(_crop_window(tf.shape(image), crop_seed))
        return image[offset_y:offset_y + height, offset_x:offset_x + width]

    return tf.cond(tf.io.is_jpeg(encoded), crop_jpeg, crop_other)


def resize_center_crop(encoded, image_size: int):
    """Eval transform of an encoded image: resize the shorter side to image_size / 0.875, then take the central
    image_size x image_size crop. Returns float32 in [0, 255]."""
    return center_crop(decode(encoded), image_size)


def center_crop(image, image_size: int, fraction: float = EVAL_CROP_FRACTION):
    """resize_center_crop of a decoded uint8 [h, w, 3] image (fraction 1: the central square of the shorter side)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.math.ceil(image_size / fraction) / tf.reduce_min(shape)
    new_size = tf.cast(tf.math.round(shape * scale), tf.int32)
    resized = tf.image.resize(image, new_size, method="bilinear", antialias=True)
    top, left = (new_size[0] - image_size) // 2, (new_size[1] - image_size) // 2
    return tf.ensure_shape(resized[top:top + image_size, left:left + image_size], [image_size, image_size, 3])


def fit_small(image, image_size: int):
    """How small-image datasets (<= 64 px) hold every image: uint8 [image_size, image_size, 3], other sizes
    resized (antialiased, aspect not kept) and rounded. CIFAR images pass unchanged."""
    if image.shape[0] == image_size and image.shape[1] == image_size:
        return image
    resized = tf.image.resize(image, [image_size, image_size], antialias=True)
    return tf.ensure_shape(tf.cast(resized + 0.5, tf.uint8), [image_size, image_size, 3])


def eval_image(image, image_size: int, small_images: bool, mean, std, margin: bool = False):
    """The eval transform of one decoded uint8 image of any size, as the eval pipeline applies it: normalized
    float32 [image_size, image_size, 3]. What predict.py and exported models use. margin (large images): the
    whole central square the crop is taken from (256 px for 224), for tta_views' five crops."""
    return normalize(eval_pixels(image, image_size, small_images, margin), mean, std)


def eval_pixels(image, image_size: int, small_images: bool, margin: bool = False):
    """eval_image before the normalization: float32 pixels 0-255 [image_size, image_size, 3], what TFLite and ONNX
    exports take (they normalize inside). Small images: fit_small (a CIFAR image unchanged); large ones: the
    shorter side resized to image_size / 0.875, then the central crop."""
    if small_images:
        image = fit_small(image, image_size)  # an image of the model's size comes back unchanged (tested)
    elif margin:
        image = center_crop(image, tta_size(image_size), fraction=1.0)
    else:
        image = center_crop(image, image_size)
    return tf.cast(image, tf.float32)


def tta_size(image_size: int):
    """The side of the central square `flip+crops` takes its crops from: image_size / 0.875 (224 -> 256)."""
    return int(math.ceil(image_size / EVAL_CROP_FRACTION))


def tta_views(images, mode: str, image_size: int):
    """[views, b, image_size, image_size, 3] of a batch for test-time augmentation. flip: the images and their
    mirrors. flip+crops (large images; the batch is the tta_size squares): the central crop, which is the plain
    eval image, and the four corner crops, each also mirrored."""
    if mode == "none":
        return images[None]
    if mode == "flip":
        return tf.stack([images, tf.reverse(images, [2])])
    s, n = image_size, tta_size(image_size)
    o = (n - s) // 2
    crops = [images[:, o:o + s, o:o + s], images[:, :s, :s], images[:, :s, n - s:], images[:, n - s:, :s],
             images[:, n - s:, n - s:]]
    return tf.stack(crops + [tf.reverse(c, [2]) for c in crops])


def decode(encoded):
    """JPEG/PNG/BMP/GIF bytes -> uint8 [h, w, 3]; grayscale and RGBA become RGB, a GIF gives its first frame."""
    return tf.ensure_shape(tf.io.decode_image(encoded, channels=3, expand_animations=False), [None, None, 3])


def _crop_window(shape, seed):
    """[offset_y, offset_x, height, width] of a random Inception-style crop inside an image of this shape."""
    whole_image = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=whole_image, seed=seed, min_object_covered=CROP_AREA_RANGE[0],
        aspect_ratio_range=CROP_ASPECT_RANGE, area_range=CROP_AREA_RANGE, max_attempts=CROP_ATTEMPTS,
        use_image_if_no_bounding_boxes=True)
    return tf.stack([begin[0], begin[1], size[0], size[1]])
