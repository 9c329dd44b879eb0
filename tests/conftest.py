"""Shared helpers for the in-guest tests. They run as root against the real devices, with
scull.ko and complete.ko loaded by scripts/guest-test through the project's scripts."""

import ctypes
import errno
import os
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
SCRIPTS = os.path.join(REPO, "scripts")
sys.path.insert(0, TESTS)

import kcheck  # noqa: E402

QUANTUM = 4000
QSET = 1000
NR_DEVS = 4
# scull_mutex.rs: MAX_DEVICE_SIZE and MAX_QSETS.
MAX_DEVICE_SIZE = 1 << 40
MAX_QSETS = 1 << 20

libc = ctypes.CDLL(None, use_errno=True)


def dev(n=0):
    return f"/dev/scull{n}"


def script(name, *args, check=True):
    """Runs one of the project's load scripts; returns the CompletedProcess."""
    result = subprocess.run([os.path.join(SCRIPTS, name), *args],
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} failed: {result.stderr}")
    return result


def write_dev(path, data, chunk=None):
    """Opens `path` write-only (which trims it) and writes `data`, `chunk` bytes a call."""
    fd = os.open(path, os.O_WRONLY)
    try:
        write_all(fd, data, chunk)
    finally:
        os.close(fd)


def write_all(fd, data, chunk=None):
    view = memoryview(data)
    chunk = chunk or max(len(data), 1)
    while view:
        n = os.write(fd, view[:chunk])
        assert n > 0
        view = view[n:]


def read_dev(path, chunk=1 << 20):
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_all(fd, chunk)
    finally:
        os.close(fd)


def read_all(fd, chunk=1 << 20):
    parts = []
    while True:
        part = os.read(fd, chunk)
        if not part:
            return b"".join(parts)
        parts.append(part)


def raw_errno(call, *args):
    """Calls libc `call` and returns (result, errno)."""
    ctypes.set_errno(0)
    result = getattr(libc, call)(*args)
    return result, ctypes.get_errno()


def reload_scull(*params):
    """Reloads scull with `params` (strings like 'scull_quantum=1')."""
    script("scull_unload")
    script("scull_load", *params)


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
    return len(kcheck.kernel_log().splitlines())


def new_log(since):
    return "\n".join(kcheck.kernel_log().splitlines()[since:])


__all__ = ["errno"]
