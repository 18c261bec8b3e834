"""The flags that eval.py, predict.py and export.py share for reading a trained run, and the --dtype of the tools
that compute in a chosen precision (predict.py, export.py, benchmark.py)."""
from absl import flags

DTYPES = ["auto", "float32", "bfloat16", "float16"]
AUTO_DTYPE = ("auto: bfloat16 on CPUs with AMX and GPUs of compute capability >= 8.0, float16 on 7.x GPUs, else "
              "float32")


def define_tta():
    flags.DEFINE_enum("tta", "none", ["none", "flip", "flip+crops"], "Test-time augmentation: the mean of the "
                      "softmax over the image and its mirror; flip+crops (large images) also over 4 corner crops.")


def define_raw_weights():
    flags.DEFINE_bool("raw_weights", False, "The raw weights of a run trained with --ema_decay (default: its "
                      "weight EMA).")


def define_checkpoint():
    flags.DEFINE_string("checkpoint", None, "A checkpoint prefix, or 'best'; default: the run's best on validation, "
                        "else its latest.")


def define_dtype(what):
    """--dtype, float32 by default (train.py's own defaults to auto)."""
    flags.DEFINE_enum("dtype", "float32", DTYPES, f"{what}; {AUTO_DTYPE}.")


def dtype_request(flag_values, tool):
    """precision.choose's arguments for --dtype: only a --dtype on the command line is reported "as given"."""
    return {"requested": flag_values.dtype, "given": flag_values["dtype"].present,
            "default_reason": f"{tool}'s default (--dtype=auto picks for this machine)"}
