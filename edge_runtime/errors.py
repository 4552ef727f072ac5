"""Every error the runtime raises. Each message names the file, tensor or option, what was
expected, what arrived, and what to do next."""
from __future__ import annotations


class EdgeRuntimeError(Exception):
    """Base class of every error raised by :mod:`edge_runtime`."""


class MissingDependencyError(EdgeRuntimeError, ImportError):
    """A Python package the requested feature needs is not installed."""


class ModelFileError(EdgeRuntimeError, ValueError):
    """A model file is missing, truncated, corrupted, of an unknown format, or uses an op the
    installed runtime does not know."""


class DeviceError(EdgeRuntimeError, RuntimeError):
    """A device was asked for that cannot be honoured (no library, no hardware, wrong model)."""


class DeviceStringError(EdgeRuntimeError, ValueError):
    """A device string that does not parse."""


class InputError(EdgeRuntimeError, ValueError):
    """Inputs given to :meth:`Model.run` do not match the model's inputs."""


class InferenceError(EdgeRuntimeError, RuntimeError):
    """The runtime rejected a run (e.g. an input size a graph's ops cannot take)."""
