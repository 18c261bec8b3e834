"""Which compute dtype a run uses: --dtype=auto resolved from the hardware that computes, with its reason.

The rules (issue 15): bfloat16 on TPUs, on GPUs of compute capability >= 8.0 and on CPUs with native bf16 (AMX or
AVX512-BF16 in their flags); float16 with loss scaling on 7.x GPUs; float32 otherwise. A CPU without native bf16
emulates it, slower than float32, so auto keeps float32 there. Variables stay float32 in every case.
"""
import contextlib
import dataclasses
import os

DTYPES = ("auto", "float32", "bfloat16", "float16")
# /proc/cpuinfo flag -> what it gives: oneDNN uses AMX tiles for bf16 convolutions and matmuls where it can,
# else AVX512-BF16 dot products.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
SHOWN_CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512_fp16")  # benchmark's first line


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What computes: the CPU (model name, flags), the GPUs used (name, compute capability) and a TPU."""
    cpu_model: str
    cpu_flags: frozenset
    gpus: tuple = ()    # ((name, (major, minor)), ...)
    tpu: bool = False
    cpu_cores: int = 0  # logical CPUs this process sees (0: unknown)

    def describe(self):
        """One line: the TPU, the GPUs, or the CPU with its bf16/AMX flags."""
        if self.tpu:
            return "TPU"
        if self.gpus:
            return "GPU: " + ", ".join(f"{name} (compute capability {major}.{minor})"
                                       for name, (major, minor) in self.gpus)
        shown = [f for f in SHOWN_CPU_FLAGS if f in self.cpu_flags]
        cores = f", {self.cpu_cores} cores" if self.cpu_cores else ""
        return f"CPU: {self.cpu_model}{cores}; bf16/AMX flags: {' '.join(shown) or 'none'}"


@dataclasses.dataclass(frozen=True)
class Choice:
    dtype: str      # float32 | bfloat16 | float16
    reason: str

    def line(self):
        return f"dtype {self.dtype}: {self.reason}"


def resolve(requested, hardware):
    """The dtype for --dtype=`requested` on `hardware`; an explicit dtype is kept as it is."""
    if requested not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, not {requested!r}")
    if requested != "auto":
        return Choice(requested, f"--dtype={requested} as given")
    if hardware.tpu:
        return Choice("bfloat16", "--dtype=auto on a TPU: native bfloat16")
    if hardware.gpus:
        name, capability = min(hardware.gpus, key=lambda gpu: gpu[1])  # the slowest GPU decides for all
        cc = f"{name} has compute capability {capability[0]}.{capability[1]}"
        if capability >= (8, 0):
            return Choice("bfloat16", f"--dtype=auto: {cc} (>= 8.0): native bfloat16")
        if capability >= (7, 0):
            return Choice("float16", f"--dtype=auto: {cc} (7.x): float16 tensor cores, with dynamic loss scaling")
        return Choice("float32", f"--dtype=auto: {cc} (< 7.0): no fast half precision")
    native = [f for f in CPU_BF16_FLAGS if f in hardware.cpu_flags]
    if native:
        return Choice("bfloat16", f"--dtype=auto: the CPU has {' and '.join(native)}: native bfloat16")
    return Choice("float32", f"--dtype=auto: the CPU has neither {' nor '.join(CPU_BF16_FLAGS)}, so bfloat16 "
                             "would be emulated and slower than float32")


def parse_cpuinfo(text):
    """(model name, flags) from the text of /proc/cpuinfo (the first processor's)."""
    model, flags = "unknown CPU", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def read_cpuinfo(path="/proc/cpuinfo"):
    """parse_cpuinfo of this machine; an unknown CPU without flags where there is no /proc/cpuinfo (macOS...)."""
    try:
        with open(path) as f:
            return parse_cpuinfo(f.read())
    except OSError:
        return "unknown CPU", frozenset()


def gpu_capabilities(num_gpus=None):
    """((name, (major, minor)), ...) of the first num_gpus visible GPUs (None: all), from TensorFlow's devices."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")[:num_gpus]
    found = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        found.append((details.get("device_name", gpu.name), tuple(details.get("compute_capability", (0, 0)))))
    return tuple(found)


def detect(num_gpus=None, tpu=False):
    """This machine's Hardware as it computes: num_gpus=0 means the CPU even if GPUs are visible; tpu=True (a
    TPU strategy) means a TPU, which tf.distribute only uses when asked (--strategy=tpu)."""
    model, flags = read_cpuinfo()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    return Hardware(model, flags, () if tpu else gpu_capabilities(num_gpus), tpu, cores)


def choose(requested, num_gpus=None, tpu=False):
    """resolve() on this machine's hardware; returns (Choice, Hardware)."""
    hardware = detect(num_gpus, tpu)
    return resolve(requested, hardware), hardware


def resolve_config(config, out=print):
    """A training Config with --dtype=auto resolved for the devices its steps run on and the reason recorded
    (config.json keeps both); prints the choice."""
    choice, _ = choose(config.dtype, config.num_gpus, tpu=config.strategy == "tpu")
    out(choice.line())
    return dataclasses.replace(config, dtype=choice.dtype, dtype_reason=choice.reason)


def keras_policy(dtype):
    """The Keras dtype policy of a resolved dtype: float32, or mixed (float32 variables, half-precision math)."""
    return "float32" if dtype == "float32" else f"mixed_{dtype}"


def set_global(dtype):
    """Layers built from now on compute in `dtype` (a resolved one)."""
    import keras
    keras.mixed_precision.set_global_policy(keras_policy(dtype))


@contextlib.contextmanager
def building(dtype):
    """Layers built inside compute in `dtype`; the process' global policy is restored afterwards (a layer keeps
    the policy it was built with)."""
    import keras
    previous = keras.mixed_precision.global_policy()
    set_global(dtype)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
