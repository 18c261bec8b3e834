"""Drops the lines TFLite's C++ code writes straight to stderr (file descriptor 2, beyond TF_CPP_MIN_LOG_LEVEL's
reach) that tell a user nothing: the converter's quantization settings and the runtime's default XNNPACK
delegate. Every other line is passed on, after the call, in order."""
import contextlib
import os
import re
import sys
import tempfile

NOISE = re.compile(rb"^(fully_quantize: \d+, inference_type: \d+, input_inference_type: |"
                   rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)")


@contextlib.contextmanager
def dropped():
    """Runs the block with stderr captured, then writes what it printed back to stderr without NOISE's lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not NOISE.match(line)]
            if kept:
                os.write(2, b"".join(kept))
