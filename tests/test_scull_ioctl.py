"""scull's LDD3 ioctls: quantum and qset, read and changed through every command."""

import ctypes
import errno
import fcntl
import os
import struct
import subprocess
import sys

import pytest

from conftest import QSET, QUANTUM, REPO, dev, libc

MAGIC = ord("k")


def ioc(direction, nr, size=0, magic=MAGIC):
    # x86 layout: dir in bits 30-31 (1 write, 2 read), size in 16-29, type in 8-15, nr in 0-7.
    return (direction << 30) | (size << 16) | (magic << 8) | nr


def io(nr):
    return ioc(0, nr)


INT = 4
RESET = io(0)
S_QUANTUM, S_QSET = ioc(1, 1, INT), ioc(1, 2, INT)
T_QUANTUM, T_QSET = io(3), io(4)
G_QUANTUM, G_QSET = ioc(2, 5, INT), ioc(2, 6, INT)
Q_QUANTUM, Q_QSET = io(7), io(8)
X_QUANTUM, X_QSET = ioc(3, 9, INT), ioc(3, 10, INT)
H_QUANTUM, H_QSET = io(11), io(12)

libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]


def raw_ioctl(fd, cmd, arg):
    """ioctl with `arg` passed as the raw unsigned long; returns (result, errno)."""
    ctypes.set_errno(0)
    result = libc.ioctl(fd, cmd, arg & (2**64 - 1))
    return result, ctypes.get_errno()


@pytest.fixture
def fd():
    fd = os.open(dev(0), os.O_RDONLY)
    yield fd
    fcntl.ioctl(fd, RESET)
    os.close(fd)


def get(fd, cmd):
    return struct.unpack("i", fcntl.ioctl(fd, cmd, b"\0" * INT))[0]


def test_get_and_query_give_the_load_time_values(fd):
    assert get(fd, G_QUANTUM) == QUANTUM
    assert get(fd, G_QSET) == QSET
    assert fcntl.ioctl(fd, Q_QUANTUM) == QUANTUM
    assert fcntl.ioctl(fd, Q_QSET) == QSET


def test_set_through_a_pointer(fd):
    fcntl.ioctl(fd, S_QUANTUM, struct.pack("i", 123))
    fcntl.ioctl(fd, S_QSET, struct.pack("i", 45))
    assert (fcntl.ioctl(fd, Q_QUANTUM), fcntl.ioctl(fd, Q_QSET)) == (123, 45)


def test_tell_and_shift(fd):
    assert raw_ioctl(fd, T_QUANTUM, 77) == (0, 0)
    assert fcntl.ioctl(fd, Q_QUANTUM) == 77
    assert raw_ioctl(fd, H_QUANTUM, 88) == (77, 0)
    assert raw_ioctl(fd, H_QSET, 9) == (QSET, 0)
    assert (get(fd, G_QUANTUM), get(fd, G_QSET)) == (88, 9)


def test_exchange_through_a_pointer(fd):
    buf = bytearray(struct.pack("i", 321))
    fcntl.ioctl(fd, X_QUANTUM, buf)
    assert struct.unpack("i", buf)[0] == QUANTUM
    assert fcntl.ioctl(fd, Q_QUANTUM) == 321
    buf = bytearray(struct.pack("i", 12))
    fcntl.ioctl(fd, X_QSET, buf)
    assert struct.unpack("i", buf)[0] == QSET
    assert fcntl.ioctl(fd, Q_QSET) == 12


def test_reset_restores_the_load_time_values(fd):
    raw_ioctl(fd, T_QUANTUM, 5)
    raw_ioctl(fd, T_QSET, 6)
    fcntl.ioctl(fd, RESET)
    assert (fcntl.ioctl(fd, Q_QUANTUM), fcntl.ioctl(fd, Q_QSET)) == (QUANTUM, QSET)


def test_new_sizes_apply_from_the_next_trim(fd):
    """With quantum 1 and qset 1 a device holds at most 2**20 bytes (2**20 qsets)."""
    raw_ioctl(fd, T_QUANTUM, 1)
    raw_ioctl(fd, T_QSET, 1)
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
    fcntl.ioctl(fd, RESET)
    os.close(os.open(dev(0), os.O_WRONLY))


@pytest.mark.parametrize("cmd, arg", [
    (T_QUANTUM, 0), (T_QUANTUM, -1), (T_QUANTUM, (16 << 20) + 1), (T_QUANTUM, 1 << 31),
    (T_QUANTUM, 1 << 40), (T_QSET, 0), (T_QSET, (1 << 20) + 1), (H_QSET, -5),
])
def test_values_rejected_as_load_parameters_are_einval(fd, cmd, arg):
    assert raw_ioctl(fd, cmd, arg) == (-1, errno.EINVAL)
    assert (fcntl.ioctl(fd, Q_QUANTUM), fcntl.ioctl(fd, Q_QSET)) == (QUANTUM, QSET)


def test_quantum_times_qset_too_large_is_einval(fd):
    assert raw_ioctl(fd, T_QUANTUM, 16 << 20) == (0, 0)
    assert raw_ioctl(fd, T_QSET, 1 << 20) == (-1, errno.EINVAL)
    with pytest.raises(OSError) as err:
        fcntl.ioctl(fd, S_QSET, struct.pack("i", 1 << 20))
    assert err.value.errno == errno.EINVAL
    assert fcntl.ioctl(fd, Q_QSET) == QSET


@pytest.mark.parametrize("cmd", [G_QUANTUM, G_QSET, S_QUANTUM, S_QSET, X_QUANTUM, X_QSET])
def test_bad_pointers_are_efault(fd, cmd):
    assert raw_ioctl(fd, cmd, 16) == (-1, errno.EFAULT)
    assert (fcntl.ioctl(fd, Q_QUANTUM), fcntl.ioctl(fd, Q_QSET)) == (QUANTUM, QSET)


@pytest.mark.parametrize("cmd", [
    ioc(0, 13), ioc(0, 0xff), ioc(0, 0, magic=ord("j")), ioc(0, 7, magic=ord("q")),
    ioc(1, 1, 8),  # S_QUANTUM with the size of a long
    ioc(2, 1, INT),  # S_QUANTUM's number with G's direction
])
def test_unknown_commands_are_enotty(fd, cmd):
    assert raw_ioctl(fd, cmd, 0) == (-1, errno.ENOTTY)


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
    cmds = [(T_QUANTUM, 10), (H_QSET, 10), (RESET, 0), (S_QUANTUM, 16), (X_QSET, 16),
            (Q_QUANTUM, 0), (Q_QSET, 0)]
    out = subprocess.run([sys.executable, "-c", UNPRIVILEGED, dev(0),
                          *[f"{c:x}:{a}" for c, a in cmds]],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [f"-1/{errno.EPERM}"] * 5 + [f"{QUANTUM}/0", f"{QSET}/0"]
    assert fcntl.ioctl(fd, Q_QUANTUM) == QUANTUM


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
	printf("%d %d %d %d\n", quantum, ioctl(fd, SCULL_IOCQQUANTUM), value,
	       ioctl(fd, SCULL_IOCQQSET));
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
    assert out.split() == [str(QUANTUM), str(QUANTUM), str(QSET), "250"]


def scullctl(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "scullctl"), *args],
                          capture_output=True, text=True)


def test_scullctl_round_trip(fd):
    assert scullctl("show").stdout == f"quantum {QUANTUM}\nqset {QSET}\n"
    assert scullctl("set", "quantum", "512").returncode == 0
    assert scullctl("--device", dev(2), "set", "qset", "64").returncode == 0
    assert scullctl("show").stdout == "quantum 512\nqset 64\n"
    bad = scullctl("set", "qset", "0")
    assert bad.returncode == 1 and "Invalid argument" in bad.stderr
    assert scullctl("reset").returncode == 0
    assert scullctl("show").stdout == f"quantum {QUANTUM}\nqset {QSET}\n"
