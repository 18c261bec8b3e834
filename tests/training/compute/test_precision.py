"""--dtype=auto: the rules on faked CPU flag sets, GPU compute capabilities and TPUs, /proc/cpuinfo parsing,
TensorFlow's device details, the resolved config a run records, and the policy scope inference builds in."""
import dataclasses

import keras
import pytest
import tensorflow as tf

from training import config as config_lib
from training.compute import precision

SAPPHIRE_RAPIDS = "fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512_fp16"
COOPER_LAKE = "fpu sse avx2 avx512f avx512_bf16 avx512_vnni"
ICE_LAKE = "fpu sse avx2 avx512f avx512_vnni avx512_vbmi2"  # AVX-512 without bf16: emulated, slower
EPYC_ROME = "fpu sse avx2 sha_ni"
ZEN4 = "fpu sse avx2 avx512f avx512_bf16 avx512_vnni sha_ni"
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: {flags}

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: {flags}
"""


def cpu(flags, model="a CPU"):
    return precision.Hardware(model, frozenset(flags.split()))


@pytest.mark.parametrize("flags,dtype,reason", [
    (SAPPHIRE_RAPIDS, "bfloat16", "AMX: bfloat16 trained 2.1x"),
    ("fpu amx_bf16 amx_tile", "bfloat16", "AMX: "),
    # The Xeon (family 6, model 207) whose hypervisor hides AMX, Cooper Lake, AMD Zen 4: bf16 is slower.
    (COOPER_LAKE, "float32", "AVX512-BF16 without AMX: bfloat16 trained 1.2-1.4x slower than float32"),
    (ZEN4, "float32", "AVX512-BF16 without AMX"),
    (ICE_LAKE, "float32", "no native bfloat16"),
    (EPYC_ROME, "float32", "no native bfloat16"),
    ("", "float32", "no native bfloat16"),
])
def test_auto_on_cpus(flags, dtype, reason):
    choice = precision.resolve("auto", cpu(flags))
    assert choice.dtype == dtype and reason in choice.reason and choice.reason.startswith("--dtype=auto: ")


def test_a_flag_is_a_whole_word_not_a_substring():
    # 'amx_bf16_foo' or 'noavx512_bf16' are not the flags; only the exact words count.
    assert precision.resolve("auto", cpu("amx_bf16_foo noavx512_bf16 avx512f")).dtype == "float32"


@pytest.mark.parametrize("capabilities,dtype,reason", [
    (((8, 0),), "bfloat16", "compute capability 8.0 (>= 8.0: native bfloat16"),          # A100
    (((9, 0),), "bfloat16", "compute capability 9.0 (>= 8.0"),                          # H100
    (((8, 6),), "bfloat16", "compute capability 8.6"),                                   # RTX 3090
    (((7, 0),), "float16", "compute capability 7.0 (7.x: float16 tensor cores, with dynamic loss scaling"),  # V100
    (((7, 5),), "float16", "compute capability 7.5 (7.x"),                              # T4
    (((6, 1),), "float32", "compute capability 6.1 (< 7.0: no fast half precision"),    # GTX 1080
    (((8, 0), (7, 0)), "float16", "gpu1 has compute capability 7.0"),                    # the slowest GPU decides
])
def test_auto_on_gpus_ignores_the_cpu(capabilities, dtype, reason):
    gpus = tuple((f"gpu{i}", c) for i, c in enumerate(capabilities))
    # A CPU without bf16 beside them: the GPUs compute, so their capability decides.
    choice = precision.resolve("auto", dataclasses.replace(cpu(EPYC_ROME), gpus=gpus))
    assert choice.dtype == dtype and reason in choice.reason


def test_auto_on_a_tpu():
    choice = precision.resolve("auto", dataclasses.replace(cpu(EPYC_ROME), tpu=True))
    assert choice.dtype == "bfloat16" and "TPU" in choice.reason


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_an_explicit_dtype_is_kept_on_any_hardware(dtype):
    for hardware in (cpu(SAPPHIRE_RAPIDS), cpu(EPYC_ROME), dataclasses.replace(cpu(""), gpus=(("g", (7, 0)),))):
        assert precision.resolve(dtype, hardware) == precision.Choice(dtype, f"--dtype={dtype} as given")


def test_an_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="--dtype must be one of auto, float32, bfloat16, float16, not 'half'"):
        precision.resolve("half", cpu(""))


def test_cpuinfo_model_and_flags():
    model, flags = precision.parse_cpuinfo(CPUINFO.format(flags=SAPPHIRE_RAPIDS))
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == frozenset(SAPPHIRE_RAPIDS.split())
    assert precision.parse_cpuinfo("") == ("unknown CPU", frozenset())


def test_this_machines_cpuinfo_is_read(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(flags=COOPER_LAKE))
    assert precision.read_cpuinfo(str(path)) == ("Intel(R) Xeon(R) Platinum 8480+", frozenset(COOPER_LAKE.split()))
    assert precision.read_cpuinfo(str(tmp_path / "missing")) == ("unknown CPU", frozenset())


def test_gpu_capabilities_come_from_tensorflows_device_details(monkeypatch):
    fake = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(3)]
    details = {fake[0].name: {"device_name": "NVIDIA A100-SXM4-40GB", "compute_capability": (8, 0)},
               fake[1].name: {"device_name": "Tesla V100-SXM2-16GB", "compute_capability": (7, 0)},
               fake[2].name: {"device_name": "NVIDIA H100", "compute_capability": (9, 0)}}
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: fake if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details[device.name])
    assert precision.gpu_capabilities(1) == (("NVIDIA A100-SXM4-40GB", (8, 0)),)
    choice, hardware = precision.choose("auto")  # all three: the V100 decides
    assert choice.dtype == "float16" and "Tesla V100-SXM2-16GB has compute capability 7.0" in choice.reason
    assert hardware.describe().startswith("GPU: NVIDIA A100-SXM4-40GB (compute capability 8.0), Tesla V100")
    # --num_gpus=0: the CPU computes, whatever GPUs are visible.
    assert precision.detect(num_gpus=0).gpus == ()
    assert precision.detect(tpu=True).describe() == "TPU"


def test_the_cpu_line_names_the_bf16_and_amx_flags():
    assert (dataclasses.replace(cpu(SAPPHIRE_RAPIDS, "Xeon"), cpu_cores=2).describe()
            == "CPU: Xeon, 2 cores; bf16/AMX flags: amx_bf16 amx_tile avx512_bf16 avx512_fp16")
    assert cpu(EPYC_ROME, "EPYC").describe() == "CPU: EPYC; bf16/AMX flags: none"


def run_config(**changes):
    config = config_lib.Config(
        dataset="cifar10", data_dir=None, image_size=32, num_classes=10, strict=False, model_dir="m", depth=8,
        unit="auto", arch="auto", width=1.0, sync_bn=False, bn_momentum=0.9, batch_size=8, train_steps=1,
        steps_per_epoch=1, learning_rate=0.1, lr_batch_denominator=128, lr_schedule="cosine", lr_decay_epochs=(),
        warmup_epochs=0, momentum=0.9, nesterov=False, weight_decay=0, label_smoothing=0, epochs_between_evals=1,
        steps_per_loop=1, log_every_steps=1, keep_checkpoints=1, keep_best=1, nan_policy="stop",
        debug_nan_at_step=None, seed=0, deterministic=False, dtype="auto", xla=False, strategy="auto",
        num_gpus=None, cpu_devices=1)
    return dataclasses.replace(config, **changes)


@pytest.fixture
def on(monkeypatch):
    """on(flags): this process's CPU has these flags."""
    def fake(flags):
        monkeypatch.setattr(precision, "detect",
                            lambda num_gpus=None, tpu=False: dataclasses.replace(cpu(flags), tpu=tpu))
    return fake


def test_a_run_records_the_resolved_dtype_and_why(on):
    on(ICE_LAKE)
    lines = []
    resolved = precision.resolve_config(run_config(), out=lines.append)
    assert resolved.dtype == "float32" and "no native bfloat16" in resolved.dtype_reason
    assert lines == [f"dtype float32: {resolved.dtype_reason}"]
    assert '"dtype_reason": "--dtype=auto: no native bfloat16' in resolved.to_json()
    tpu = precision.resolve_config(run_config(strategy="tpu"), out=lines.append)
    assert tpu.dtype == "bfloat16"


def test_a_resumed_run_keeps_its_recorded_dtype_whatever_auto_picks_today(on):
    on(SAPPHIRE_RAPIDS)  # auto would pick bfloat16 here
    recorded = {"dtype": "float32", "dtype_reason": "--dtype=auto: no native bfloat16"}
    kept = precision.resolve_config(run_config(), recorded, out=lambda line: None)
    assert kept.dtype == "float32" and kept.dtype_reason == precision.KEPT + "--dtype=auto: no native bfloat16"
    again = precision.resolve_config(run_config(), json_record(kept), out=lambda line: None)
    assert again.dtype_reason == kept.dtype_reason  # resumed twice: said once
    # The same explicit dtype is fine; a different one run_dir.check_compatible refuses before this.
    assert precision.resolve_config(run_config(dtype="float32"), recorded, out=lambda line: None).dtype == "float32"
    # A config.json that never resolved (or lacks the field): resolved as a new run.
    assert precision.resolve_config(run_config(), {"dtype": "auto"}, out=lambda line: None).dtype == "bfloat16"


def json_record(config):
    return {"dtype": config.dtype, "dtype_reason": config.dtype_reason}


def test_every_worker_takes_the_chiefs_choice(on):
    on(COOPER_LAKE)  # this worker alone: float32
    chief_index = precision.DTYPES.index("bfloat16")
    lines = []
    worker = precision.resolve_config(run_config(strategy="multi_worker"), broadcast=lambda mine: chief_index,
                                      out=lines.append)
    assert worker.dtype == "bfloat16" and lines == [
        "dtype bfloat16: the chief's choice (this worker alone would have taken float32)"]
    agreeing = precision.resolve_config(run_config(), broadcast=lambda mine: mine, out=lines.append)
    assert agreeing.dtype == "float32" and "AVX512-BF16 without AMX" in agreeing.dtype_reason


def test_deterministic_keeps_a_cpu_in_float32(on):
    on(SAPPHIRE_RAPIDS)  # auto would pick bfloat16 here; with --deterministic, float32 (precision.DETERMINISTIC_CPU)
    kept = precision.resolve_config(run_config(deterministic=True), out=lambda line: None)
    assert kept.dtype == "float32" and kept.dtype_reason.startswith("--dtype=auto with --deterministic: float32")
    explicit = precision.resolve("bfloat16", cpu(SAPPHIRE_RAPIDS), deterministic=True)
    assert explicit.dtype == "bfloat16" and "not bit-reproducible on a CPU" in explicit.reason
    gpu = dataclasses.replace(cpu(SAPPHIRE_RAPIDS), gpus=(("A100", (8, 0)),))
    assert precision.resolve("auto", gpu, deterministic=True).dtype == "bfloat16"  # GPU determinism is cuDNN's
    assert precision.resolve("auto", cpu(EPYC_ROME), deterministic=True) == precision.resolve("auto", cpu(EPYC_ROME))


def test_only_a_dtype_the_user_passed_is_as_given():
    default = precision.resolve("float32", cpu(SAPPHIRE_RAPIDS), given=False,
                                default_reason="float32, predict.py's default")
    assert default == precision.Choice("float32", "float32, predict.py's default")


def test_building_scopes_the_policy_to_the_layers_built_inside():
    with precision.building("bfloat16"):
        inside = keras.layers.Dense(2)
    outside = keras.layers.Dense(2)
    assert inside.compute_dtype == "bfloat16" and inside.variable_dtype == "float32"
    assert outside.compute_dtype == "float32" and keras.mixed_precision.global_policy().name == "float32"
