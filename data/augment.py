"""The modern recipe's augmentations, each a function of (image, seed) built from stateless random ops, so it gives
the same result eagerly and inside tf.data and a resumed pipeline reproduces it exactly:

  cutout       a square of the normalized image set to 0, the mean (DeVries & Taylor 2017; 16 px on CIFAR);
  randaugment  N operations drawn from 14, at magnitude M of 10 (Cubuk et al. 2019; timm's ranges);
  mixup        a batch blended with itself reversed, soft targets lam / 1 - lam (Zhang et al. 2018);
  cutmix       a box of the reversed batch pasted in, targets by area (Yun et al. 2019).
Images are float32 in [0, 255] (RGB) for randaugment, normalized for cutout; mixup and cutmix take a batch.
"""
import dataclasses
import math

import tensorflow as tf

FILL = 128.0  # what geometric operations show outside the image (timm's fill)


@dataclasses.dataclass(frozen=True)
class Augment:
    """What the training pipeline adds to the base crop and flip. Zero turns a part off."""
    cutout: int = 0                   # side of the square, in pixels
    randaugment_layers: int = 0       # N
    randaugment_magnitude: float = 9  # M, of 10
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mixup_prob: float = 0.0           # per batch: cutmix with cutmix_prob, else mixup with mixup_prob, else none
    cutmix_prob: float = 0.0

    @property
    def mixes(self):
        return self.mixup_prob > 0 or self.cutmix_prob > 0


def cutout(image, seed, size, fill=0.0):
    """Sets a size x size square centred anywhere in the image to `fill` (per channel: the dataset's mean pixel
    in a pixel image, which is 0 once normalized); the part inside the image."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    centre = tf.random.stateless_uniform([2], seed, 0, 1) * tf.cast(tf.stack([height, width]), tf.float32)
    centre = tf.cast(centre, tf.int32)
    rows, cols = tf.range(height)[:, None], tf.range(width)[None, :]
    half = size // 2
    inside = ((rows >= centre[0] - half) & (rows < centre[0] - half + size) &
              (cols >= centre[1] - half) & (cols < centre[1] - half + size))
    return tf.where(inside[:, :, None], tf.broadcast_to(tf.cast(fill, image.dtype), tf.shape(image)), image)


def randaugment(image, seed, layers, magnitude):
    """`layers` operations, each drawn uniformly from OPERATIONS and applied at magnitude / 10 with a random
    sign where it has one. image: float32 [h, w, 3] in [0, 255]; returns the same."""
    m = magnitude / 10.0
    for layer_seed in tf.unstack(tf.random.experimental.stateless_split(seed, layers)):
        choice_seed, sign_seed = tf.unstack(tf.random.experimental.stateless_split(layer_seed, 2))
        which = tf.random.stateless_uniform([], choice_seed, 0, len(OPERATIONS), dtype=tf.int32)
        sign = tf.where(tf.random.stateless_uniform([], sign_seed) < 0.5, -1.0, 1.0)
        image = tf.switch_case(which, [lambda op=op: op(image, m, sign) for op in OPERATIONS.values()])
        image = tf.ensure_shape(tf.clip_by_value(image, 0.0, 255.0), [None, None, 3])
    return image


def mix(images, labels, seed, num_classes, augment):
    """Mixup or cutmix of a batch with itself reversed (example i with b-1-i, as timm pairs them), chosen per
    batch; returns (images, soft targets [b, num_classes] summing to 1)."""
    choice_seed, lam_seed, box_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    targets = tf.one_hot(labels, num_classes)
    partner_images, partner_targets = tf.reverse(images, [0]), tf.reverse(targets, [0])
    u = tf.random.stateless_uniform([], choice_seed)
    lam_mixup = _beta(lam_seed, augment.mixup_alpha)
    lam_cutmix = _beta(lam_seed, augment.cutmix_alpha)
    mask, lam_box = _box(tf.shape(images)[1], tf.shape(images)[2], lam_cutmix, box_seed)
    use_cutmix = u < augment.cutmix_prob
    use_mixup = tf.logical_not(use_cutmix) & (u < augment.cutmix_prob + augment.mixup_prob)
    lam = tf.where(use_cutmix, lam_box, tf.where(use_mixup, lam_mixup, 1.0))
    mixed = tf.where(use_cutmix, images * (1.0 - mask) + partner_images * mask,
                     lam * images + (1.0 - lam) * partner_images)
    return mixed, lam * targets + (1.0 - lam) * partner_targets


def _beta(seed, alpha):
    """lam ~ Beta(alpha, alpha) from two stateless gamma draws (alpha 0: 1.0, no mixing)."""
    if alpha <= 0:
        return tf.constant(1.0)
    a, b = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    x = tf.random.stateless_gamma([], a, alpha)
    y = tf.random.stateless_gamma([], b, alpha)
    return x / (x + y)


def _box(height, width, lam, seed):
    """A box of area ~(1 - lam) centred anywhere, clipped to the image: (mask [h, w, 1], 1 - its exact area)."""
    ratio = tf.sqrt(1.0 - lam)
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    centre = tf.random.stateless_uniform([2], seed) * tf.stack([h, w])
    top, bottom = tf.clip_by_value(centre[0] - ratio * h / 2, 0, h), tf.clip_by_value(centre[0] + ratio * h / 2, 0, h)
    left, right = tf.clip_by_value(centre[1] - ratio * w / 2, 0, w), tf.clip_by_value(centre[1] + ratio * w / 2, 0, w)
    top, bottom, left, right = (tf.cast(tf.round(v), tf.int32) for v in (top, bottom, left, right))
    rows, cols = tf.range(height)[:, None], tf.range(width)[None, :]
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    area = tf.cast((bottom - top) * (right - left), tf.float32) / (h * w)
    return tf.cast(inside, tf.float32)[None, :, :, None], 1.0 - area


# --- RandAugment's operations: (image in [0, 255], magnitude in [0, 1], sign +-1) -> image ---

def _blend(degenerate, image, factor):
    """PIL's ImageEnhance: factor 0 gives `degenerate`, 1 the image, beyond 1 extrapolates."""
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def _gray(image):
    return tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))


def _keep_border(image, smooth):
    """The smoothed interior inside the original border, as PIL's SHARPEN filter leaves it."""
    inner = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    rows, cols = tf.range(h)[:, None], tf.range(w)[None, :]
    interior = (rows > 0) & (rows < h - 1) & (cols > 0) & (cols < w - 1)
    return tf.where(interior[:, :, None], inner, image)


def _autocontrast(image, m, sign):
    low = tf.reduce_min(image, [0, 1], keepdims=True)
    high = tf.reduce_max(image, [0, 1], keepdims=True)
    scaled = (image - low) * 255.0 / tf.maximum(high - low, 1e-3)
    return tf.where(high > low, scaled, image)


def _equalize(image, m, sign):
    """PIL's ImageOps.equalize, channel by channel."""
    def channel(values):
        values = tf.cast(tf.clip_by_value(values, 0, 255), tf.int32)
        histogram = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256)
        last = tf.gather(histogram, tf.reduce_max(tf.where(histogram > 0)))
        step = (tf.reduce_sum(histogram) - tf.cast(last, tf.int32)) // 255
        lut = (tf.cumsum(histogram) - histogram + step // 2) // tf.maximum(step, 1)
        lut = tf.clip_by_value(lut, 0, 255)
        return tf.where(step > 0, tf.cast(tf.gather(lut, values), tf.float32), tf.cast(values, tf.float32))
    return tf.stack([channel(image[:, :, c]) for c in range(3)], axis=-1)


def _transform(image, matrix):
    """Applies the projective transform mapping output (x, y) to input coordinates (8 numbers), filling with FILL."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=tf.cast(tf.stack(matrix)[None], tf.float32), output_shape=tf.stack([h, w]),
        interpolation="BILINEAR", fill_mode="CONSTANT", fill_value=FILL)
    return out[0]


def _rotate(image, m, sign):
    angle = sign * m * 30.0 * math.pi / 180.0
    h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    cos, sin = tf.cos(angle), tf.sin(angle)
    return _transform(image, [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])


def _shear_x(image, m, sign):
    return _transform(image, [1.0, sign * m * 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])


def _shear_y(image, m, sign):
    return _transform(image, [1.0, 0.0, 0.0, sign * m * 0.3, 1.0, 0.0, 0.0, 0.0])


def _translate_x(image, m, sign):
    shift = sign * m * 0.45 * tf.cast(tf.shape(image)[1], tf.float32)
    return _transform(image, [1.0, 0.0, shift, 0.0, 1.0, 0.0, 0.0, 0.0])


def _translate_y(image, m, sign):
    shift = sign * m * 0.45 * tf.cast(tf.shape(image)[0], tf.float32)
    return _transform(image, [1.0, 0.0, 0.0, 0.0, 1.0, shift, 0.0, 0.0])


def _posterize(image, m, sign):
    shift = tf.cast(4 * m, tf.int32)  # keep 8 - 4m bits
    values = tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8)
    return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(values, tf.cast(shift, tf.uint8)),
                                         tf.cast(shift, tf.uint8)), tf.float32)


OPERATIONS = {
    "identity": lambda image, m, sign: image,
    "autocontrast": _autocontrast,
    "equalize": _equalize,
    "rotate": _rotate,
    "solarize": lambda image, m, sign: tf.where(image < 256.0 - 256.0 * m, image, 255.0 - image),
    "color": lambda image, m, sign: _blend(_gray(image), image, 1.0 + sign * 0.9 * m),
    "posterize": _posterize,
    "contrast": lambda image, m, sign: _blend(tf.reduce_mean(_gray(image)), image, 1.0 + sign * 0.9 * m),
    "brightness": lambda image, m, sign: _blend(tf.zeros_like(image), image, 1.0 + sign * 0.9 * m),
    "sharpness": lambda image, m, sign: _blend(_keep_border(image, _smooth(image)), image, 1.0 + sign * 0.9 * m),
    "shear_x": _shear_x,
    "shear_y": _shear_y,
    "translate_x": _translate_x,
    "translate_y": _translate_y,
}


def _smooth(image):
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "VALID")[0]
