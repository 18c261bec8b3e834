"""Which compute dtype a run uses: --dtype=auto resolved from the hardware that computes, with its reason.

auto picks by measured speed (README 'Performance'), from the tables below: bfloat16 on TPUs, on GPUs of compute
capability >= 8.0 and on CPUs with AMX; float16 with loss scaling on 7.x GPUs; float32 otherwise, including CPUs
whose only bf16 instructions are AVX512-BF16, where bfloat16 trained 1.2-1.4x slower than float32. Variables stay
float32 in every case.
"""
import contextlib
import dataclasses
import os

DTYPES = ("auto", "float32", "bfloat16", "float16")
SHOWN_CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512_fp16")  # benchmark's first line

# CPUs: the first row whose /proc/cpuinfo flag the CPU has decides; the last row is every other CPU. Each row
# states the measurement behind it (benchmark.py --mode=train, float32 vs bfloat16, side by side in one session).
CPU_RULES = (
    ("amx_bf16", "bfloat16", "AMX: bfloat16 trained 2.1x (ResNet-50, batch 32) and 1.7x (ResNet-20, batch 128) "
                             "as fast as float32 on a 2-core Xeon with AMX"),
    ("avx512_bf16", "float32", "AVX512-BF16 without AMX: bfloat16 trained 1.2-1.4x slower than float32 (ResNet-50 "
                               "and ResNet-20, on a Xeon without AMX and with oneDNN held to AVX512-BF16)"),
    (None, "float32", "no native bfloat16: it would be emulated, slower than float32"),
)
# --deterministic on a CPU: oneDNN's bfloat16 training is not bit-reproducible, so auto keeps float32 there.
DETERMINISTIC_CPU = ("4 concurrent runs of one command with Nesterov momentum ended in 2 different results in "
                     "bfloat16, in 1 in float32, on a 2-core Xeon with AMX")
# GPUs: the first row whose minimum compute capability the slowest GPU reaches decides.
GPU_RULES = (
    ((8, 0), "bfloat16", ">= 8.0: native bfloat16 tensor cores"),
    ((7, 0), "float16", "7.x: float16 tensor cores, with dynamic loss scaling"),
    ((0, 0), "float32", "< 7.0: no fast half precision"),
)


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


def resolve(requested, hardware, given=True, default_reason="", deterministic=False):
    """The dtype for --dtype=`requested` on `hardware`. An explicit dtype is kept as it is: "as given" if the user
    passed it (`given`), else `default_reason` says whose default it is. deterministic: train.py's --deterministic,
    which keeps a CPU in float32 (DETERMINISTIC_CPU)."""
    if requested not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, not {requested!r}")
    on_cpu = not (hardware.tpu or hardware.gpus)
    if requested != "auto":
        caveat = (f"; with --deterministic not bit-reproducible on a CPU ({DETERMINISTIC_CPU})"
                  if deterministic and on_cpu and requested != "float32" else "")
        return Choice(requested, (f"--dtype={requested} as given" if given else default_reason or
                                  f"{requested} by default") + caveat)
    if hardware.tpu:
        return Choice("bfloat16", "--dtype=auto on a TPU: native bfloat16")
    if hardware.gpus:
        name, capability = min(hardware.gpus, key=lambda gpu: gpu[1])  # the slowest GPU decides for all
        _, dtype, why = next(rule for rule in GPU_RULES if capability >= rule[0])
        return Choice(dtype, f"--dtype=auto: {name} has compute capability {capability[0]}.{capability[1]} ({why})")
    flag, dtype, why = next(rule for rule in CPU_RULES if rule[0] is None or rule[0] in hardware.cpu_flags)
    if deterministic and dtype != "float32":
        return Choice("float32", f"--dtype=auto with --deterministic: float32, as {dtype} on a CPU is not "
                                 f"bit-reproducible ({DETERMINISTIC_CPU})")
    return Choice(dtype, f"--dtype=auto: {why}")


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


def choose(requested, num_gpus=None, tpu=False, given=True, default_reason="", deterministic=False):
    """resolve() on this machine's hardware; returns (Choice, Hardware)."""
    hardware = detect(num_gpus, tpu)
    return resolve(requested, hardware, given, default_reason, deterministic), hardware


KEPT = "kept from the run's start (config.json): "


def resolve_config(config, recorded=None, broadcast=None, out=print):
    """A training Config in the run's one dtype, with its reason; prints the choice (config.json records both).

    recorded: the run's config.json as a dict, if it has one: a resumed run keeps the dtype it began with, whatever
    today's default picks (run_dir.check_compatible already refused a different explicit --dtype). Otherwise
    --dtype is resolved for the devices the steps run on. broadcast(index) -> index: the chief's value on every
    worker of a multi-worker run, so that every worker takes the chief's choice."""
    if recorded and recorded.get("dtype") in DTYPES[1:]:
        reason = recorded.get("dtype_reason") or "recorded"
        choice = Choice(recorded["dtype"], reason if reason.startswith(KEPT) else KEPT + reason)
    else:
        choice, _ = choose(config.dtype, config.num_gpus, tpu=config.strategy == "tpu",
                           deterministic=config.deterministic)
    if broadcast is not None:
        chiefs = DTYPES[broadcast(DTYPES.index(choice.dtype))]
        if chiefs != choice.dtype:
            choice = Choice(chiefs, f"the chief's choice (this worker alone would have taken {choice.dtype})")
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
