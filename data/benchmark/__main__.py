"""Training input pipeline throughput, no model: how many images/s make_train_dataset delivers.

    python -m data.benchmark --dataset=cifar10 --batch_size=128 --data_dir=DIR --steps=300
"""
import sys
import time

from absl import flags

from console import cuda_noise, logs

from data import DataError, get_info, make_train_dataset


def measure(dataset: str, data_dir, batch_size: int, steps: int, warmup_steps: int, image_size, deterministic: bool,
            log_every: int = 50) -> float:
    """Returns training-pipeline images/s over `steps` batches, after `warmup_steps` batches that fill buffers
    and let AUTOTUNE settle (and after the in-memory load, which building the dataset does)."""
    info = get_info(dataset, data_dir, image_size)
    iterator = iter(make_train_dataset(info, data_dir=data_dir, global_batch_size=batch_size,
                                       deterministic=deterministic))
    for _ in range(warmup_steps):
        next(iterator)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        next(iterator)
        if step % log_every == 0 or step == steps:
            rate = step * batch_size / (time.perf_counter() - start)
            print(f"step {step}/{steps}: {rate:,.0f} images/s", flush=True)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    cuda_noise.import_tensorflow()  # the devices are probed: the CUDA-line filter ends
    f = flags.FLAGS
    try:
        rate = measure(f.dataset, f.data_dir, f.batch_size, f.steps, f.warmup_steps, f.image_size, f.deterministic)
    except DataError as e:
        sys.exit(f"error: {e}")
    print(f"{f.dataset} training pipeline: {rate:,.0f} images/s (batch {f.batch_size}, {f.steps} steps after "
          f"{f.warmup_steps} warm-up, deterministic={f.deterministic})")


if __name__ == "__main__":
    flags.DEFINE_string("dataset", "cifar10", "dataset name, as for get_info (e.g. cifar10, folder:/path)")
    flags.DEFINE_string("data_dir", None, "tfds data dir (default: TFDS_DATA_DIR or ~/tensorflow_datasets)")
    flags.DEFINE_integer("batch_size", 128, "global batch size")
    flags.DEFINE_integer("steps", 300, "batches to time")
    flags.DEFINE_integer("warmup_steps", 20, "batches to draw before timing")
    flags.DEFINE_integer("image_size", None, "model input size for large images (default 224)")
    flags.DEFINE_bool("deterministic", False, "tf.data deterministic order (slower when workers are uneven)")
    logs.run(main)
