"""train.allocator: glibc takes the three mallopt settings; elsewhere nothing is changed."""
import platform

import pytest

from train import allocator


def test_glibc_takes_every_setting():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip(f"needs glibc; this Python runs on {platform.libc_ver()[0] or 'another C library'}")
    allocator.tune_allocator.cache_clear()
    assert allocator.tune_allocator() is True


def test_a_library_without_mallopt_is_left_alone(monkeypatch):
    class NoMallopt:
        def __init__(self, name):
            pass

        def __getattr__(self, name):
            raise AttributeError(name)

    monkeypatch.setattr(allocator.ctypes, "CDLL", NoMallopt)
    allocator.tune_allocator.cache_clear()
    try:
        assert allocator.tune_allocator() is False
    finally:
        allocator.tune_allocator.cache_clear()
