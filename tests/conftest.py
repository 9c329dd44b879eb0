"""pytest fixtures for the in-guest tests; what the tests share otherwise is in helpers.py.

The tests run as root against the real devices, with scull.ko and complete.ko loaded by
scripts/guest-test through the project's scripts."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import (GUARDED_DEVICES, NR_DEVS, dev, ensure_scull, log_lines, reload_scull,  # noqa: E402
                     unload_scull)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "debug_kernel: needs an option only the debug kernel has (kmemleak, "
        "fault injection, KUnit, KASAN's accounting): deselected on Debian's kernel")
    config.addinivalue_line(
        "markers", "release_kernel: needs an option only Debian's kernel has (kprobes, "
        "ns_last_pid): "
        "deselected on the debug kernel")


@pytest.fixture
def scull_params(request):
    """Loads scull with other parameters for one test: the test calls it first. The defaults
    come back before the next test that needs them (empty_devices), so that a run of such
    tests does not reload the module twice each."""
    def apply(*params):
        reload_scull(*params)
    yield apply


@pytest.fixture
def scull_unloaded():
    """The test starts with scull unloaded (empty_devices unloads it)."""


# The guest suite is the test files in this directory; tests/host runs on the host and
# tests/checker in a guest of its own, and neither touches scull.
SUITE_DIR = os.path.dirname(os.path.abspath(__file__))


def in_suite(path):
    return os.path.dirname(str(path)) == SUITE_DIR


@pytest.fixture(autouse=True, scope="session")
def scull_loaded_with_defaults_at_the_end(request):
    """scripts/guest-test unloads scull with its defaults after the suite."""
    yield
    if any(in_suite(item.path) for item in request.session.items):
        ensure_scull()


@pytest.fixture(autouse=True)
def empty_devices(request):
    """Every test starts with scull loaded with the default parameters and its default
    devices, the access devices' included, empty (opening write-only trims); but one that
    asks for scull_params loads scull itself, and one that asks for scull_unloaded starts
    without it. Under emulation each reload costs seconds, so a reload happens only where the
    state differs."""
    if not in_suite(request.path):
        yield
        return
    if "scull_unloaded" in request.fixturenames:
        unload_scull()
        yield
        return
    if "scull_params" in request.fixturenames:
        yield
        return
    ensure_scull()
    for path in [dev(n) for n in range(NR_DEVS)] + [f"/dev/{name}" for name in GUARDED_DEVICES]:
        if os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY))
    yield


@pytest.fixture
def log_since():
    """The number of kernel log lines before the test, to read only what it adds."""
    return log_lines()
