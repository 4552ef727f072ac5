"""TensorFlow's C++ start-up lines (oneDNN, "Could not find cuda drivers", absl) stay off the
terminal unless ``EDGEPILOT_VERBOSE`` is set (``--verbose``): they are printed straight to file
descriptor 2 while TensorFlow loads, even with ``TF_CPP_MIN_LOG_LEVEL=3``, so that descriptor is
pointed at /dev/null for exactly that moment. Later warnings and errors still reach stderr."""
from __future__ import annotations

import contextlib
import os

VERBOSE_ENV = "EDGEPILOT_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 inside the block (unless verbose)."""
    if verbose():
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_tensorflow():
    """``import tensorflow`` without its start-up lines on the terminal."""
    with quiet_stderr():
        import tensorflow

        if not os.environ.get("TF_CONFIG"):  # a cluster's collective ops must be configured before devices start
            tensorflow.config.list_logical_devices()  # device start-up ("failed call to cuInit") happens here too
    return tensorflow
