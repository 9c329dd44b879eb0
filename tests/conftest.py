"""pytest fixtures for the in-guest tests; what the tests share otherwise is in helpers.py.

The tests run as root against the real devices, with scull.ko and complete.ko loaded by
scripts/guest-test through the project's scripts."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import NR_DEVS, dev, log_lines, reload_scull, script  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "debug_kernel: needs an option only the debug kernel has (kmemleak, "
        "fault injection, KUnit, KASAN's accounting): deselected on Debian's kernel")


@pytest.fixture
def scull_params(request):
    """Reloads scull with other parameters for one test, and back to the defaults after."""
    def apply(*params):
        reload_scull(*params)
    yield apply
    if not os.path.exists(dev(0)) or subprocess.run(
            ["grep", "-q", "^scull ", "/proc/modules"]).returncode != 0:
        script("scull_load")
    else:
        reload_scull()


@pytest.fixture(autouse=True)
def empty_devices():
    """Every test starts from empty default devices (opening write-only trims)."""
    for n in range(NR_DEVS):
        if os.path.exists(dev(n)):
            os.close(os.open(dev(n), os.O_WRONLY))
    yield


@pytest.fixture
def log_since():
    """The number of kernel log lines before the test, to read only what it adds."""
    return log_lines()
