"""Training input pipeline throughput, no model: how many images/s make_train_dataset delivers, per core.

    python -m data.benchmark --dataset=cifar10 --batch_size=128 --data_dir=DIR --steps=300
    python -m data.benchmark.photos /tmp/photos && taskset -c 0 python -m data.benchmark --dataset=folder:/tmp/photos

On a large-image dataset (JPEGs decoded every epoch) it also times, in the same run and on the same files, the
Model Garden's pipeline, a whole-file decode, and ours cut after each stage (data/benchmark/stages.py), and prints
where the time goes. Pin it (taskset, a container's --cpus) to read the per-core figure of the machine's cores.
"""
import sys
import time

from absl import flags
import numpy as np

from console import cuda_noise, logs

from data import DataError, get_info, make_train_dataset


def measure(dataset: str, data_dir, batch_size: int, steps: int, warmup_steps: int, image_size, deterministic: bool,
            log_every: int = 50) -> float:
    """Returns training-pipeline images/s over `steps` batches, after `warmup_steps` batches that fill buffers
    and let AUTOTUNE settle (and after the in-memory load, which building the dataset does). The batches are
    pixels, as train.py takes them (its step normalizes them on the device)."""
    info = get_info(dataset, data_dir, image_size)
    iterator = iter(make_train_dataset(info, data_dir=data_dir, global_batch_size=batch_size,
                                       deterministic=deterministic, pixels=True))
    for _ in range(warmup_steps):
        next(iterator)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        next(iterator)
        if step % log_every == 0 or step == steps:
            rate = step * batch_size / (time.perf_counter() - start)
            print(f"step {step}/{steps}: {rate:,.0f} images/s", flush=True)
    return steps * batch_size / (time.perf_counter() - start)


def compare(info, data_dir, batch_size: int, images: int, rounds: int, out=print) -> dict:
    """{pipeline: images/s, the mean of `rounds` rounds}: ours (pixels, as train.py takes them, and normalized
    on the host), the reference, decode alone and ours' stages, each round timing every one in turn."""
    from data.benchmark import stages
    from data.datasets import load_split

    records = load_split(info, "train", data_dir).records
    for _ in records.batch(256).prefetch(2):  # every file read once: the page cache holds them for every pipeline
        pass
    size = info.image_size
    ours = {"ours": lambda: make_train_dataset(info, data_dir=data_dir, global_batch_size=batch_size, pixels=True),
            "ours, normalized on the host": lambda: make_train_dataset(info, data_dir=data_dir,
                                                                        global_batch_size=batch_size)}
    pipelines = {**ours, "reference": lambda: stages.reference(records, size, batch_size),
                 "decode only": lambda: stages.decode_only(records, size, batch_size).batch(batch_size),
                 **{name: (lambda fn=fn: fn(records, size, batch_size).batch(batch_size))
                    for name, fn in stages.OUR_STAGES}}
    rates = {name: [] for name in pipelines}
    for r in range(rounds):
        for name, build in pipelines.items():
            rates[name].append(stages.time_images(build(), images, batch_size, warmup=2 * batch_size))
        out(f"round {r + 1}/{rounds}: " + ", ".join(f"{name} {v[-1]:,.0f}" for name, v in rates.items()))
    return {name: float(np.mean(v)) for name, v in rates.items()}


def file_statistics(info, data_dir) -> str:
    """'N files, mean WxH px, K kB' of the training split's files."""
    import tensorflow as tf
    from data.datasets import load_split

    shapes, sizes = [], []
    for encoded, _ in load_split(info, "train", data_dir).records:
        sizes.append(len(encoded.numpy()))
        shapes.append(tf.image.extract_jpeg_shape(encoded).numpy()[:2] if tf.io.is_jpeg(encoded) else (0, 0))
    heights, widths = np.array(shapes).T
    return (f"{len(sizes)} training files, mean {widths.mean():.0f}x{heights.mean():.0f} px, "
            f"{np.mean(sizes) / 1000:.0f} kB")


def report(rates: dict, cores: int) -> list:
    """The table's lines: each pipeline's images/s and per core, then ours' time per image per stage."""
    from data.benchmark import stages

    lines = [f"{'pipeline':<32}{'images/s':>10}{'per core':>10}"]
    for name in ("ours", "ours, normalized on the host", "reference", "decode only"):
        lines.append(f"{name:<32}{rates[name]:>10,.0f}{rates[name] / cores:>10,.0f}")
    lines.append(f"ours: {rates['ours'] / rates['decode only']:.0%} of decode only, "
                 f"{rates['ours'] / rates['reference']:.2f}x the reference")
    lines.append("where ours' time goes, per image on one core (ours cut after each stage; the last row is its "
                 "order, batching and prefetch):")
    previous = 0.0
    names = [name for name, _ in stages.OUR_STAGES] + ["ours"]
    for name in names:
        cumulative = 1000 * cores / rates[name]  # ms of one core per image
        label = "order, batch, prefetch" if name == "ours" else name
        lines.append(f"  {label:<30}{cumulative - previous:>8.3f} ms   (cumulative {cumulative:.3f} ms)")
        previous = cumulative
    return lines


def main(argv):
    del argv
    cuda_noise.import_tensorflow()  # the devices are probed: the CUDA-line filter ends
    from data.benchmark import stages
    f = flags.FLAGS
    try:
        info = get_info(f.dataset, f.data_dir, f.image_size)
        if not info.small_images:
            cores = stages.cores()
            print(f"{f.dataset}: {file_statistics(info, f.data_dir)}; {info.image_size} px, batch "
                  f"{f.batch_size}, {cores} core(s) (pin with taskset for one core's figure)", flush=True)
            rates = compare(info, f.data_dir, f.batch_size, f.steps * f.batch_size, f.rounds)
            print("\n".join(report(rates, cores)))
            print(f"{f.dataset} training pipeline: {rates['ours']:,.0f} images/s, {rates['ours'] / cores:,.0f} per "
                  f"core ({f.rounds} rounds of {f.steps} batches of {f.batch_size})")
            return
        rate = measure(f.dataset, f.data_dir, f.batch_size, f.steps, f.warmup_steps, f.image_size, f.deterministic)
    except DataError as e:
        sys.exit(f"error: {e}")
    print(f"{f.dataset} training pipeline: {rate:,.0f} images/s (batch {f.batch_size}, {f.steps} steps after "
          f"{f.warmup_steps} warm-up, deterministic={f.deterministic})")


if __name__ == "__main__":
    flags.DEFINE_string("dataset", "cifar10", "dataset name, as for get_info (e.g. cifar10, folder:/path)")
    flags.DEFINE_string("data_dir", None, "tfds data dir (default: TFDS_DATA_DIR or ~/tensorflow_datasets)")
    flags.DEFINE_integer("batch_size", 128, "global batch size")
    flags.DEFINE_integer("steps", 300, "batches to time (large images: per pipeline and round)")
    flags.DEFINE_integer("warmup_steps", 20, "batches to draw before timing")
    flags.DEFINE_integer("rounds", 2, "large images: rounds of every pipeline in turn; the mean is reported")
    flags.DEFINE_integer("image_size", None, "model input size for large images (default 224)")
    flags.DEFINE_bool("deterministic", False, "tf.data deterministic order (slower when workers are uneven)")
    logs.run(main)
