"""scull read/write/llseek semantics against /dev/scull0..3."""

import errno
import os
import random

import pytest

from helpers import QSET, QUANTUM, dev, opened, read_all, read_dev, write_all, write_dev

QSET_BYTES = QUANTUM * QSET
SIZES = [0, 1, QUANTUM - 1, QUANTUM, QUANTUM + 1, QSET_BYTES - 1, QSET_BYTES,
         QSET_BYTES + 1, 3 * QSET_BYTES + 12345]


def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_in_one_call(size):
    data = random_bytes(size, size)
    write_dev(dev(0), data)
    assert read_dev(dev(0)) == data


@pytest.mark.parametrize("chunk", [1 << 20, 4096, QUANTUM, 3999, 4001, 65537])
def test_round_trip_with_odd_chunkings(chunk):
    data = random_bytes(2 * QSET_BYTES + 777, chunk)
    write_dev(dev(1), data, chunk)
    assert read_dev(dev(1), chunk=chunk) == data
    assert read_dev(dev(1), chunk=7919) == data


def test_one_call_moves_a_whole_mebibyte():
    data = random_bytes(1 << 20, 1)
    with opened(dev(0), os.O_RDWR) as fd:
        assert os.write(fd, data) == len(data)
        os.lseek(fd, 0, os.SEEK_SET)
        assert len(os.read(fd, 1 << 20)) == 1 << 20


def test_read_at_end_returns_zero():
    write_dev(dev(0), b"hello\n")
    with opened(dev(0), os.O_RDONLY) as fd:
        assert os.read(fd, 100) == b"hello\n"
        assert os.read(fd, 100) == b""
        assert os.pread(fd, 10, 1 << 30) == b""


def test_read_never_passes_the_size():
    write_dev(dev(0), b"abcdef")
    with opened(dev(0), os.O_RDONLY) as fd:
        assert os.pread(fd, 100, 4) == b"ef"


def test_holes_read_as_zeros():
    with opened(dev(2), os.O_RDWR) as fd:
        hole_end = QSET_BYTES + QUANTUM * 3 + 10
        assert os.pwrite(fd, b"tail", hole_end) == 4
        assert os.pwrite(fd, b"head", 0) == 4
        data = os.pread(fd, hole_end + 100, 0)
        assert len(data) == hole_end + 4
        assert data[:4] == b"head"
        assert data[4:hole_end] == bytes(hole_end - 4)
        assert data[hole_end:] == b"tail"


def test_write_extends_size_and_overwrites_in_place():
    with opened(dev(0), os.O_RDWR) as fd:
        os.write(fd, b"0123456789")
        os.pwrite(fd, b"xx", 3)
        assert os.lseek(fd, 0, os.SEEK_END) == 10
        assert os.pread(fd, 20, 0) == b"012xx56789"


def test_lseek_whences():
    write_dev(dev(0), b"x" * 100)
    with opened(dev(0), os.O_RDONLY) as fd:
        assert os.lseek(fd, 10, os.SEEK_SET) == 10
        assert os.lseek(fd, 5, os.SEEK_CUR) == 15
        assert os.lseek(fd, -5, os.SEEK_CUR) == 10
        assert os.lseek(fd, 0, os.SEEK_END) == 100
        assert os.lseek(fd, -30, os.SEEK_END) == 70
        assert os.read(fd, 100) == b"x" * 30
        # Past the end is allowed: reads there find nothing.
        assert os.lseek(fd, 1000, os.SEEK_END) == 1100
        assert os.read(fd, 10) == b""


@pytest.mark.parametrize("offset, whence", [
    (-1, os.SEEK_SET),
    (-1, os.SEEK_CUR),
    (-101, os.SEEK_END),
    (1 << 62, os.SEEK_CUR),  # after seeking to 2**62 below: overflows i64
])
def test_lseek_to_a_negative_or_overflowing_position_is_einval(offset, whence):
    write_dev(dev(0), b"x" * 100)
    with opened(dev(0), os.O_RDONLY) as fd:
        if offset == 1 << 62:
            os.lseek(fd, (1 << 63) - 10, os.SEEK_SET)
        with pytest.raises(OSError) as err:
            os.lseek(fd, offset, whence)
        assert err.value.errno == errno.EINVAL


@pytest.mark.parametrize("whence", [3, 4, 99])  # SEEK_DATA, SEEK_HOLE, nonsense
def test_lseek_with_unknown_whence_is_einval(whence):
    with opened(dev(0), os.O_RDONLY) as fd:
        with pytest.raises(OSError) as err:
            os.lseek(fd, 0, whence)
        assert err.value.errno == errno.EINVAL


def test_each_open_file_has_its_own_position():
    write_dev(dev(0), b"abcdefgh")
    a = os.open(dev(0), os.O_RDONLY)
    b = os.open(dev(0), os.O_RDONLY)
    try:
        assert os.read(a, 3) == b"abc"
        assert os.read(b, 2) == b"ab"
        assert os.read(a, 3) == b"def"
        assert os.read(b, 2) == b"cd"
    finally:
        os.close(a)
        os.close(b)


def test_open_write_only_trims():
    write_dev(dev(0), b"old data")
    os.close(os.open(dev(0), os.O_WRONLY))
    assert read_dev(dev(0)) == b""


@pytest.mark.parametrize("flags", [os.O_RDWR, os.O_RDONLY])
def test_other_open_modes_keep_the_data(flags):
    write_dev(dev(0), b"keep me")
    os.close(os.open(dev(0), flags))
    assert read_dev(dev(0)) == b"keep me"


def test_devices_are_independent():
    payloads = [random_bytes(QUANTUM * (n + 1) + n, 100 + n) for n in range(4)]
    for n, data in enumerate(payloads):
        write_dev(dev(n), data)
    for n, data in enumerate(payloads):
        assert read_dev(dev(n)) == data
    os.close(os.open(dev(2), os.O_WRONLY))
    assert read_dev(dev(2)) == b""
    assert read_dev(dev(3)) == payloads[3]


def test_shell_round_trip():
    """The README's example: echo into the device, cat it back."""
    import subprocess
    subprocess.run(f"echo hello > {dev(0)}", shell=True, check=True)
    out = subprocess.run(["cat", dev(0)], check=True, capture_output=True).stdout
    assert out == b"hello\n"


def test_dd_round_trip(tmp_path):
    """The README's example: 64 MiB of random data through dd, compared with cmp."""
    import subprocess
    src = tmp_path / "r"
    subprocess.run(["dd", "if=/dev/urandom", f"of={src}", "bs=1M", "count=64", "status=none"],
                   check=True)
    subprocess.run(["dd", f"if={src}", f"of={dev(1)}", "bs=1M", "status=none"], check=True)
    result = subprocess.run(["cmp", str(src), dev(1)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readv_and_writev_span_quanta():
    parts = [random_bytes(n, n) for n in (10, QUANTUM, QUANTUM + 3, 1)]
    with opened(dev(0), os.O_RDWR) as fd:
        assert os.writev(fd, parts) == sum(map(len, parts))
        os.lseek(fd, 0, os.SEEK_SET)
        bufs = [bytearray(len(p)) for p in parts]
        assert os.readv(fd, bufs) == sum(map(len, parts))
        assert [bytes(b) for b in bufs] == parts


def test_read_all_helper_sees_written_size():
    data = random_bytes(QUANTUM * 2, 5)
    with opened(dev(3), os.O_RDWR) as fd:
        write_all(fd, data, 1000)
        os.lseek(fd, 0, os.SEEK_SET)
        assert read_all(fd, 3000) == data


@pytest.mark.parametrize("path", [dev(0), "/dev/scullsingle", "/dev/sculluid",
                                  "/dev/scullwuid"])
def test_a_failed_o_direct_open_keeps_the_data(path):
    """The VFS fails O_DIRECT on a device without direct I/O, after the driver's open ran:
    the driver must refuse it first, not empty the device for an open that fails."""
    write_dev(path, b"survives")
    with pytest.raises(OSError) as failed:
        os.open(path, os.O_WRONLY | os.O_DIRECT)
    assert failed.value.errno == errno.EINVAL
    assert read_dev(path) == b"survives"
    # And the device is free again (scullsingle admits one open file at a time).
    os.close(os.open(path, os.O_WRONLY))
    assert read_dev(path) == b""


def test_o_append_is_ignored():
    """As in LDD3: a write goes to the file's position, O_APPEND or not (char devices get
    no help from the VFS there: only file systems call generic_write_checks)."""
    write_dev(dev(0), b"0123456789")
    with opened(dev(0), os.O_RDWR | os.O_APPEND) as fd:
        assert os.write(fd, b"ab") == 2
        assert os.lseek(fd, 0, os.SEEK_CUR) == 2
    assert read_dev(dev(0)) == b"ab23456789"
