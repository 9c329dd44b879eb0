"""scull's LDD3 ioctls: quantum and qset, read and changed through every command."""

import ctypes
import errno
import fcntl
import os
import struct
import subprocess
import sys
import termios

import pytest

from helpers import (INT, IOC_NONE, IOC_READ, IOC_WRITE, PIPE_BUFFER, QSET, QUANTUM, REPO,
                     SCULL_IOCGQSET, SCULL_IOCGQUANTUM, SCULL_IOCHQSET, SCULL_IOCHQUANTUM,
                     SCULL_IOCQQSET, SCULL_IOCQQUANTUM, SCULL_IOCRESET, SCULL_IOCSQSET,
                     SCULL_IOCSQUANTUM, SCULL_IOCTQSET, SCULL_IOCTQUANTUM, SCULL_IOCXQSET,
                     SCULL_IOCXQUANTUM, SCULL_P_IOCQSIZE, SCULL_P_IOCTSIZE, HeldOpen, dev, ioc,
                     libc, opened, scullctl)


def raw_ioctl(fd, cmd, arg):
    """ioctl with `arg` passed as the raw unsigned long; returns (result, errno)."""
    ctypes.set_errno(0)
    result = libc.ioctl(fd, cmd, arg & (2**64 - 1))
    return result, ctypes.get_errno()


@pytest.fixture
def fd():
    fd = os.open(dev(0), os.O_RDONLY)
    yield fd
    fcntl.ioctl(fd, SCULL_IOCRESET)
    os.close(fd)


def get(fd, cmd):
    return struct.unpack("i", fcntl.ioctl(fd, cmd, b"\0" * INT))[0]


def test_get_and_query_give_the_load_time_values(fd):
    assert get(fd, SCULL_IOCGQUANTUM) == QUANTUM
    assert get(fd, SCULL_IOCGQSET) == QSET
    assert fcntl.ioctl(fd, SCULL_IOCQQUANTUM) == QUANTUM
    assert fcntl.ioctl(fd, SCULL_IOCQQSET) == QSET


def test_set_through_a_pointer(fd):
    fcntl.ioctl(fd, SCULL_IOCSQUANTUM, struct.pack("i", 123))
    fcntl.ioctl(fd, SCULL_IOCSQSET, struct.pack("i", 45))
    assert (fcntl.ioctl(fd, SCULL_IOCQQUANTUM), fcntl.ioctl(fd, SCULL_IOCQQSET)) == (123, 45)


def test_tell_and_shift(fd):
    assert raw_ioctl(fd, SCULL_IOCTQUANTUM, 77) == (0, 0)
    assert fcntl.ioctl(fd, SCULL_IOCQQUANTUM) == 77
    assert raw_ioctl(fd, SCULL_IOCHQUANTUM, 88) == (77, 0)
    assert raw_ioctl(fd, SCULL_IOCHQSET, 9) == (QSET, 0)
    assert (get(fd, SCULL_IOCGQUANTUM), get(fd, SCULL_IOCGQSET)) == (88, 9)


def test_exchange_through_a_pointer(fd):
    buf = bytearray(struct.pack("i", 321))
    fcntl.ioctl(fd, SCULL_IOCXQUANTUM, buf)
    assert struct.unpack("i", buf)[0] == QUANTUM
    assert fcntl.ioctl(fd, SCULL_IOCQQUANTUM) == 321
    buf = bytearray(struct.pack("i", 12))
    fcntl.ioctl(fd, SCULL_IOCXQSET, buf)
    assert struct.unpack("i", buf)[0] == QSET
    assert fcntl.ioctl(fd, SCULL_IOCQQSET) == 12


def test_reset_restores_the_load_time_values(fd):
    raw_ioctl(fd, SCULL_IOCTQUANTUM, 5)
    raw_ioctl(fd, SCULL_IOCTQSET, 6)
    fcntl.ioctl(fd, SCULL_IOCRESET)
    assert (fcntl.ioctl(fd, SCULL_IOCQQUANTUM), fcntl.ioctl(fd, SCULL_IOCQQSET)) == (QUANTUM, QSET)


def test_new_sizes_apply_from_the_next_trim(fd):
    """With quantum 1 and qset 1 a device holds at most 2**20 bytes (2**20 qsets)."""
    raw_ioctl(fd, SCULL_IOCTQUANTUM, 1)
    raw_ioctl(fd, SCULL_IOCTQSET, 1)
    w = os.open(dev(0), os.O_RDWR)  # not a trim: the device keeps the old layout
    try:
        assert os.pwrite(w, b"x", 1 << 20) == 1
    finally:
        os.close(w)
    w = os.open(dev(0), os.O_WRONLY)  # a trim: the device adopts quantum 1, qset 1
    try:
        assert os.pwrite(w, b"y", (1 << 20) - 1) == 1
        with pytest.raises(OSError) as err:
            os.pwrite(w, b"z", 1 << 20)
        assert err.value.errno == errno.EFBIG
    finally:
        os.close(w)
    fcntl.ioctl(fd, SCULL_IOCRESET)
    os.close(os.open(dev(0), os.O_WRONLY))


@pytest.mark.parametrize("cmd, arg", [
    (SCULL_IOCTQUANTUM, 0), (SCULL_IOCTQUANTUM, -1), (SCULL_IOCTQUANTUM, (16 << 20) + 1),
    (SCULL_IOCTQUANTUM, 1 << 31), (SCULL_IOCTQUANTUM, 1 << 40), (SCULL_IOCTQSET, 0),
    (SCULL_IOCTQSET, (1 << 20) + 1), (SCULL_IOCHQSET, -5),
])
def test_values_rejected_as_load_parameters_are_einval(fd, cmd, arg):
    assert raw_ioctl(fd, cmd, arg) == (-1, errno.EINVAL)
    assert (fcntl.ioctl(fd, SCULL_IOCQQUANTUM), fcntl.ioctl(fd, SCULL_IOCQQSET)) == (QUANTUM, QSET)


def test_quantum_times_qset_too_large_is_einval(fd):
    assert raw_ioctl(fd, SCULL_IOCTQUANTUM, 16 << 20) == (0, 0)
    assert raw_ioctl(fd, SCULL_IOCTQSET, 1 << 20) == (-1, errno.EINVAL)
    with pytest.raises(OSError) as err:
        fcntl.ioctl(fd, SCULL_IOCSQSET, struct.pack("i", 1 << 20))
    assert err.value.errno == errno.EINVAL
    assert fcntl.ioctl(fd, SCULL_IOCQQSET) == QSET


def test_pipe_size_is_told_and_queried_through_any_device(fd):
    """SCULL_P_IOCTSIZE takes the size from the argument, 1 byte to 1 MiB; other values are
    EINVAL and change nothing. SCULL_P_IOCQSIZE returns it, on every kind of device."""
    try:
        for bad in [0, -1, (1 << 20) + 1, (1 << 32) + 100]:
            assert raw_ioctl(fd, SCULL_P_IOCTSIZE, bad) == (-1, errno.EINVAL), bad
        assert fcntl.ioctl(fd, SCULL_P_IOCQSIZE) == PIPE_BUFFER
        assert raw_ioctl(fd, SCULL_P_IOCTSIZE, 1 << 20) == (0, 0)
        assert fcntl.ioctl(fd, SCULL_P_IOCQSIZE) == 1 << 20
        assert raw_ioctl(fd, SCULL_P_IOCTSIZE, 100) == (0, 0)
        for node in [dev(3), "/dev/scullpipe1", "/dev/scullsingle"]:
            with opened(node, os.O_RDONLY) as other:
                assert fcntl.ioctl(other, SCULL_P_IOCQSIZE) == 100, node
    finally:
        fcntl.ioctl(fd, SCULL_P_IOCTSIZE, PIPE_BUFFER)


@pytest.mark.parametrize("cmd", [SCULL_IOCGQUANTUM, SCULL_IOCGQSET, SCULL_IOCSQUANTUM,
                                 SCULL_IOCSQSET, SCULL_IOCXQUANTUM, SCULL_IOCXQSET])
def test_bad_pointers_are_efault(fd, cmd):
    assert raw_ioctl(fd, cmd, 16) == (-1, errno.EFAULT)
    assert (fcntl.ioctl(fd, SCULL_IOCQQUANTUM), fcntl.ioctl(fd, SCULL_IOCQQSET)) == (QUANTUM, QSET)


@pytest.mark.parametrize("cmd", [
    ioc(IOC_NONE, 15), ioc(IOC_NONE, 0xff), ioc(IOC_NONE, 0, magic=ord("j")),
    ioc(IOC_READ, 14, INT),  # SCULL_P_IOCQSIZE's number with a pointer
    ioc(IOC_NONE, 7, magic=ord("q")),
    ioc(IOC_WRITE, 1, 8),  # SCULL_IOCSQUANTUM with the size of a long
    ioc(IOC_READ, 1, INT),  # SCULL_IOCSQUANTUM's number with G's direction
])
def test_unknown_commands_are_enotty(fd, cmd):
    assert raw_ioctl(fd, cmd, 0) == (-1, errno.ENOTTY)


def ioctl_round(fd):
    """Q, T, H, RESET and an unknown command through `fd`, as (result, errno) pairs."""
    return [raw_ioctl(fd, cmd, arg) for cmd, arg in [
        (SCULL_IOCQQUANTUM, 0), (SCULL_IOCTQUANTUM, 1000), (SCULL_IOCQQUANTUM, 0),
        (SCULL_IOCHQSET, 7), (SCULL_IOCQQSET, 0), (SCULL_P_IOCQSIZE, 0), (SCULL_IOCRESET, 0),
        (SCULL_IOCQQUANTUM, 0), (ioc(IOC_NONE, 15), 0)]]


ROUND = [(QUANTUM, 0), (0, 0), (1000, 0), (QSET, 0), (7, 0), (PIPE_BUFFER, 0), (0, 0),
         (QUANTUM, 0), (-1, errno.ENOTTY)]


@pytest.mark.parametrize("path", [dev(0), "/dev/scullpipe0", "/dev/scullsingle",
                                  "/dev/sculluid", "/dev/scullwuid", "/dev/scullpriv"])
def test_every_device_kind_answers_the_ioctls(path):
    """Each kind of node has its own open; once open, every one answers the same ioctls.
    scullpriv is opened from a session with a terminal of its own, as it must be."""
    def in_session():
        os.setsid()
        _, tty = os.openpty()
        fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
        with opened(path, os.O_RDONLY | os.O_NONBLOCK) as fd:
            return repr(ioctl_round(fd))
    session = HeldOpen(in_session)
    try:
        assert session.status() == repr(ROUND)
    finally:
        session.finish()
        with opened(dev(0), os.O_RDONLY) as fd:
            fcntl.ioctl(fd, SCULL_IOCRESET)


UNPRIVILEGED = r"""
import ctypes, fcntl, os, struct, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
libc = ctypes.CDLL(None, use_errno=True)
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]
fd = os.open(sys.argv[1], os.O_RDONLY)
results = []
for cmd, arg in [(int(c, 16), int(a)) for c, a in (x.split(":") for x in sys.argv[2:])]:
    ctypes.set_errno(0)
    results.append(f"{libc.ioctl(fd, cmd, arg)}/{ctypes.get_errno()}")
print(" ".join(results))
"""


def test_setting_needs_cap_sys_admin(fd):
    """As user nobody: every command that sets gets EPERM, before any pointer is read."""
    cmds = [(SCULL_IOCTQUANTUM, 10), (SCULL_IOCHQSET, 10), (SCULL_IOCRESET, 0),
            (SCULL_IOCSQUANTUM, 16), (SCULL_IOCXQSET, 16), (SCULL_P_IOCTSIZE, 100),
            (SCULL_IOCQQUANTUM, 0), (SCULL_IOCQQSET, 0), (SCULL_P_IOCQSIZE, 0)]
    out = subprocess.run([sys.executable, "-c", UNPRIVILEGED, dev(0),
                          *[f"{c:x}:{a}" for c, a in cmds]],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [f"-1/{errno.EPERM}"] * 6 + [f"{QUANTUM}/0", f"{QSET}/0", f"{PIPE_BUFFER}/0"]
    assert fcntl.ioctl(fd, SCULL_P_IOCQSIZE) == PIPE_BUFFER
    assert fcntl.ioctl(fd, SCULL_IOCQQUANTUM) == QUANTUM


C_PROGRAM = r"""
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include "scull_ioctl.h"

int main(int argc, char **argv)
{
	int fd = open(argv[1], O_RDONLY), quantum = 0, value = 250;

	if (fd < 0 || ioctl(fd, SCULL_IOCGQUANTUM, &quantum))
		return 1;
	if (ioctl(fd, SCULL_IOCXQSET, &value))
		return 2;
	printf("%d %d %d %d %d %d\n", quantum, ioctl(fd, SCULL_IOCQQUANTUM), value,
	       ioctl(fd, SCULL_IOCQQSET), ioctl(fd, SCULL_P_IOCQSIZE), SCULL_IOC_MAXNR);
	return ioctl(fd, SCULL_IOCRESET) ? 3 : 0;
}
"""


@pytest.mark.parametrize("bits", ["-m64", "-m32"])
def test_c_header_matches(fd, tmp_path, bits):
    """A C program built against scull_ioctl.h, as a 64-bit and as a 32-bit (compat) caller."""
    src = tmp_path / "scullctl.c"
    src.write_text(C_PROGRAM)
    exe = tmp_path / "scullctl"
    subprocess.run(["cc", bits, "-Wall", "-Werror", f"-I{REPO}", "-o", str(exe), str(src)],
                   check=True)
    out = subprocess.run([str(exe), dev(1)], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(QUANTUM), str(QUANTUM), str(QSET), "250", str(PIPE_BUFFER), "14"]


def test_scullctl_round_trip(fd):
    default = f"quantum {QUANTUM}\nqset {QSET}\npipe_buffer {PIPE_BUFFER}\n"
    assert scullctl("show").stdout == default
    scullctl("set", "quantum", "512")
    scullctl("--device", dev(2), "set", "qset", "64")
    scullctl("--device", "/dev/scullpipe0", "set", "pipe_buffer", "300")
    try:
        assert scullctl("show").stdout == "quantum 512\nqset 64\npipe_buffer 300\n"
        bad = scullctl("set", "qset", "0", check=False)
        assert bad.returncode == 1 and "Invalid argument" in bad.stderr
        bad = scullctl("set", "pipe_buffer", "0", check=False)
        assert bad.returncode == 1 and "Invalid argument" in bad.stderr
    finally:
        scullctl("set", "pipe_buffer", str(PIPE_BUFFER))
    scullctl("reset")
    assert scullctl("show").stdout == default
