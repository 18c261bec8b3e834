"""A folder of real photographs at ImageNet's size distribution, to measure large-image input pipelines on.

    python -m data.benchmark.photos /tmp/photos            # train/<photo>/*.jpg and val/<photo>/*.jpg
    python -m data.benchmark --dataset=folder:/tmp/photos ...

No ImageNet is needed: the sources are the colour photographs scikit-image and scikit-learn ship as files (an
astronaut, a cat, coffee, a rocket, a retina, the Hubble deep field, ...). Each output image is a random crop of
one of them at a drawn aspect ratio, resized (Lanczos) to a drawn size and re-encoded as JPEG quality 90, so it
decodes like a photograph, not like noise or an upscaled thumbnail. Its class is its source photograph.

The sizes follow ImageNet's train split roughly: on average about 400x340 px (ImageNet: ~400x350, ~110 kB), most
of them 500 px on their long side, and 1 % from 1,200 to 2,600 px. Sources are at most 1,411 px, so those few
are upscaled from it: smoother than a real 2,000-px photo, they decode somewhat faster than one would.
"""
import dataclasses
import os
import shutil
import sys
import tempfile
import time

from absl import app, flags
import numpy as np
from PIL import Image

from console import logs

QUALITY = 90
# (probability, shortest, longest) of the long side in px: a table read off ImageNet's train split, whose most
# common sizes are 500x375 and 500x333, with a tail of large photographs.
LONG_SIDES = ((0.20, 100, 300), (0.35, 300, 450), (0.40, 500, 500), (0.04, 500, 1200), (0.01, 1200, 2600))
# (probability, short side / long side): 4:3 and 3:2 photographs, squares, and the rest.
ASPECTS = ((0.50, 0.75), (0.25, 2 / 3), (0.10, 1.0), (0.15, None))  # None: uniform in 0.5-0.9
PORTRAIT = 0.25  # the share taller than wide
# Colour photographs shipped as files: (package, path inside it).
SOURCES = (
    ("skimage", "data/astronaut.png"), ("skimage", "data/chelsea.png"), ("skimage", "data/coffee.png"),
    ("skimage", "data/hubble_deep_field.jpg"), ("skimage", "data/ihc.png"), ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/motorcycle_right.png"), ("skimage", "data/retina.jpg"), ("skimage", "data/rocket.jpg"),
    ("sklearn", "datasets/images/china.jpg"), ("sklearn", "datasets/images/flower.jpg"),
)
REQUIREMENT = "scikit-image and scikit-learn (pip install -r requirements-dev.txt)"


@dataclasses.dataclass(frozen=True)
class Summary:
    images: int
    mean_width: float
    mean_height: float
    mean_kb: float
    largest_side: int


def source_photos() -> dict:
    """{class name: RGB uint8 array} of every source photograph."""
    import importlib.util
    photos = {}
    for package, path in SOURCES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{package} is not installed; the photographs come from {REQUIREMENT}")
        with Image.open(os.path.join(spec.submodule_search_locations[0], path)) as image:
            photos[os.path.splitext(os.path.basename(path))[0]] = np.asarray(image.convert("RGB"))
    return photos


def draw_size(rng: np.random.Generator) -> tuple:
    """(width, height) of one image, drawn from LONG_SIDES, ASPECTS and PORTRAIT."""
    low, high = _pick(rng, LONG_SIDES)
    long_side = int(rng.integers(low, high + 1))
    aspect = _pick(rng, ASPECTS)
    aspect = rng.uniform(0.5, 0.9) if aspect is None else aspect
    short_side = max(1, round(long_side * aspect))
    return (short_side, long_side) if rng.random() < PORTRAIT else (long_side, short_side)


def make_image(photo: np.ndarray, size: tuple, rng: np.random.Generator) -> Image.Image:
    """A crop of `photo` with the aspect of size (width, height), covering 50-100 % of the largest such crop,
    maybe mirrored, resized to `size`."""
    height, width = photo.shape[:2]
    target_w, target_h = size
    scale = min(width / target_w, height / target_h) * np.sqrt(rng.uniform(0.5, 1.0))
    crop_w, crop_h = max(1, round(target_w * scale)), max(1, round(target_h * scale))
    left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    crop = Image.fromarray(photo[top:top + crop_h, left:left + crop_w])
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop.resize(size, Image.Resampling.LANCZOS)


def build(out: str, train: int, val: int, seed: int = 0, log=print) -> Summary:
    """Writes out/train/<photo>/NNNNNN.jpg and out/val/<photo>/... (train + val images, classes taking turns),
    into a temporary folder renamed into place at the end: no half-written folder."""
    photos = source_photos()
    names = sorted(photos)
    rng = np.random.default_rng(seed)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".photos-", dir=parent)
    sizes, total_bytes, start = [], 0, time.monotonic()
    try:
        for i in range(train + val):
            split, name = ("train" if i < train else "val"), names[i % len(names)]
            size = draw_size(rng)
            folder = os.path.join(tmp, split, name)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{i:06d}.jpg")
            make_image(photos[name], size, rng).save(path, quality=QUALITY)
            sizes.append(size)
            total_bytes += os.path.getsize(path)
            if (i + 1) % 200 == 0 or i + 1 == train + val:
                rate = (i + 1) / (time.monotonic() - start)
                log(f"{i + 1}/{train + val} images, {rate:.0f}/s, ETA {(train + val - i - 1) / rate:.0f} s")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    widths, heights = np.array(sizes).T
    return Summary(len(sizes), widths.mean(), heights.mean(), total_bytes / len(sizes) / 1000,
                   int(max(widths.max(), heights.max())))


def _pick(rng, table):
    """The value of a row of ((probability, *value), ...) drawn by probability."""
    probabilities = np.array([row[0] for row in table])
    row = table[rng.choice(len(table), p=probabilities / probabilities.sum())]
    return row[1:] if len(row) > 2 else row[1]


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: python -m data.benchmark.photos OUT_DIR [--train=N] [--val=N] [--seed=S]")
    out, f = argv[1], flags.FLAGS
    if os.path.exists(out):
        sys.exit(f"error: {out} exists; remove it or name a new folder")
    if f.train < len(SOURCES) or f.val < len(SOURCES):
        sys.exit(f"error: --train and --val need at least {len(SOURCES)} images each, one per photograph")
    try:
        s = build(out, f.train, f.val, f.seed)
    except (FileNotFoundError, OSError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote {s.images} JPEGs (quality {QUALITY}) of {len(SOURCES)} photographs to {out}: mean "
          f"{s.mean_width:.0f}x{s.mean_height:.0f} px, {s.mean_kb:.0f} kB, largest side {s.largest_side} px")


if __name__ == "__main__":
    flags.DEFINE_integer("train", 2200, "training images (train/)")
    flags.DEFINE_integer("val", 220, "validation images (val/, the folder's test split)")
    flags.DEFINE_integer("seed", 0, "the folder is a pure function of the seed and the counts")
    logs.run(main)
