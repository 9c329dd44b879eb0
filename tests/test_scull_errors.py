"""scull on bad input: user pointers, offsets and sizes, allocation failures."""

import ctypes
import errno
import os
import subprocess
import sys

import pytest

from helpers import (MAX_DEVICE_SIZE, QUANTUM, dev, libc, new_log, opened, raw_errno, read_dev,
                     write_dev)

BAD_POINTER = ctypes.c_void_p(16)  # never mapped: the first page is reserved


def test_write_from_a_bad_pointer_is_efault():
    with opened(dev(0), os.O_RDWR) as fd:
        result, err = raw_errno("write", fd, BAD_POINTER, ctypes.c_size_t(100))
        assert (result, err) == (-1, errno.EFAULT)
        assert os.lseek(fd, 0, os.SEEK_END) == 0


def test_read_into_a_bad_pointer_is_efault():
    write_dev(dev(0), b"z" * 100)
    with opened(dev(0), os.O_RDONLY) as fd:
        result, err = raw_errno("read", fd, BAD_POINTER, ctypes.c_size_t(100))
        assert (result, err) == (-1, errno.EFAULT)
        # The position did not move.
        assert os.read(fd, 200) == b"z" * 100


def test_write_that_faults_midway_returns_a_short_count():
    """A buffer whose second page is unmapped: the first page gets written."""
    import mmap
    page = mmap.PAGESIZE
    area = mmap.mmap(-1, 2 * page)
    area[:page] = b"p" * page
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    # Unmap the second page by hand, keeping the first.
    assert libc.munmap(ctypes.c_void_p(base + page), ctypes.c_size_t(page)) == 0
    with opened(dev(0), os.O_RDWR) as fd:
        result, _ = raw_errno("write", fd, ctypes.c_void_p(base), ctypes.c_size_t(2 * page))
        assert result == page
        assert os.pread(fd, 2 * page, 0) == b"p" * page


def test_huge_offsets_get_clean_errors():
    with opened(dev(0), os.O_RDWR) as fd:
        for offset in (MAX_DEVICE_SIZE, MAX_DEVICE_SIZE + 1, 1 << 62, (1 << 63) - 2):
            with pytest.raises(OSError) as err:
                os.pwrite(fd, b"x", offset)
            assert err.value.errno == errno.EFBIG
            assert os.pread(fd, 1, offset) == b""
        # A write that crosses the maximum size stops there.
        assert os.pwrite(fd, b"ab", MAX_DEVICE_SIZE - 1) == 1
        assert os.lseek(fd, 0, os.SEEK_END) == MAX_DEVICE_SIZE
        assert os.pread(fd, 10, MAX_DEVICE_SIZE - 1) == b"a"
        assert os.pread(fd, 10, 0) == bytes(10)


def test_negative_pread_offset_is_einval():
    with opened(dev(0), os.O_RDWR) as fd:
        result, err = raw_errno("pread", fd, ctypes.create_string_buffer(10),
                                ctypes.c_size_t(10), ctypes.c_long(-1))
        assert (result, err) == (-1, errno.EINVAL)


def test_write_at_one_gib_allocates_only_what_it_touches():
    with opened(dev(3), os.O_RDWR) as fd:
        assert os.pwrite(fd, b"far", 1 << 30) == 3
        assert os.lseek(fd, 0, os.SEEK_END) == (1 << 30) + 3
        assert os.pread(fd, 3, 1 << 30) == b"far"


FAILSLAB = "/sys/kernel/debug/failslab"

# Run in a child so that only its own allocations fail: the fault injection is aimed at
# the task through /proc/self/make-it-fail, switched on just around the writes.
ENOMEM_CHILD = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.lseek(fd, 0, os.SEEK_END)
data = b"m" * (1 << 20)
# Opened beforehand: opening a file allocates, which would fail once the switch is on.
switch = os.open("/proc/thread-self/make-it-fail", os.O_WRONLY)
os.write(switch, b"1")
results = []
for _ in range(3):
    try:
        results.append(os.write(fd, data))
    except OSError as e:
        results.append(-e.errno)
os.lseek(switch, 0, os.SEEK_SET)
os.write(switch, b"0")
print(" ".join(map(str, results)))
"""


def set_failslab(**values):
    for name, value in values.items():
        with open(os.path.join(FAILSLAB, name.replace("_", "-")), "w") as f:
            f.write(str(value))


@pytest.fixture
def failslab():
    if not os.path.isdir(FAILSLAB):
        pytest.fail("failslab is missing: the test kernel must have CONFIG_FAILSLAB")
    # Fail every slab allocation of the marked task once `space` bytes have been handed out,
    # silently: failslab's report has a call trace the log check would rightly flag.
    set_failslab(task_filter="Y", ignore_gfp_wait="N", cache_filter="N", verbose=0,
                 probability=100, interval=1, times=-1, space=40 * QUANTUM)
    yield
    set_failslab(probability=0, times=1, space=0)


@pytest.mark.debug_kernel  # failslab: CONFIG_FAILSLAB
def test_enomem_gives_short_counts_and_keeps_data(failslab, log_since):
    prefix = b"intact " * 1000
    write_dev(dev(0), prefix)
    out = subprocess.run([sys.executable, "-c", ENOMEM_CHILD, dev(0)],
                         capture_output=True, text=True, check=True).stdout.split()
    results = [int(x) for x in out]
    # Some quanta were allocated, then allocation failed: a short count, then ENOMEM.
    assert 0 < results[0] < 1 << 20, results
    # It stopped where a new quantum could not be allocated.
    assert (len(prefix) + results[0]) % QUANTUM == 0, results
    assert results[1:] == [-errno.ENOMEM, -errno.ENOMEM], results
    set_failslab(probability=0)
    data = read_dev(dev(0))
    assert data[:len(prefix)] == prefix
    assert data[len(prefix):] == b"m" * results[0]
    # The device still works.
    with opened(dev(0), os.O_RDWR) as fd:
        assert os.pwrite(fd, b"after", len(data)) == 5
    assert "Call Trace" not in new_log(log_since)


def test_position_plus_count_past_the_largest_offset_is_einval():
    """The VFS refuses it before scull sees it (rw_verify_area)."""
    with opened(dev(0), os.O_RDWR) as fd:
        with pytest.raises(OSError) as err:
            os.pwrite(fd, b"xy", (1 << 63) - 1)
        assert err.value.errno == errno.EINVAL
