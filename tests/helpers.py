"""What the in-guest test suites share: the devices' defaults, libc for raw system calls, the
ioctl numbers, the project's scripts, and open files that close themselves.

The suites run as root against the real devices, with scull.ko and complete.ko loaded by
scripts/guest-test. conftest.py holds only pytest fixtures; tests import from here.
"""

import contextlib
import ctypes
import errno
import fcntl
import os
import subprocess
import sys

import kcheck

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
SCRIPTS = os.path.join(REPO, "scripts")

# scull's defaults (scull.rs) and limits (scull_layout.rs: MAX_DEVICE_SIZE and MAX_QSETS).
QUANTUM = 4000
QSET = 1000
PIPE_BUFFER = 4000    # scull_p_buffer's default
NR_DEVS = 4
MAX_DEVICE_SIZE = 1 << 40
MAX_QSETS = 1 << 20

# libc, for the calls whose errno must be seen as the kernel returned it: Python's os.read
# and friends retry EINTR silently, and cannot pass a bad pointer. One object for all the
# suites, so that every call has the argument types below (ctypes would otherwise pass
# Python ints as C ints and truncate pointers and sizes).
libc = ctypes.CDLL(None, use_errno=True)
_SSIZE = ctypes.c_ssize_t
_FD_BUF_LEN = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_FD_BUF_LEN_POS = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
_FD_IOV_COUNT = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
for _name, _args, _result in (
        ("read", _FD_BUF_LEN, _SSIZE),
        ("write", _FD_BUF_LEN, _SSIZE),
        ("pread", _FD_BUF_LEN_POS, _SSIZE),
        ("pwrite", _FD_BUF_LEN_POS, _SSIZE),
        ("readv", _FD_IOV_COUNT, _SSIZE),
        ("writev", _FD_IOV_COUNT, _SSIZE),
        ("open", [ctypes.c_char_p, ctypes.c_int], ctypes.c_int),
        ("close", [ctypes.c_int], ctypes.c_int),
        # The argument as a raw unsigned long: a number, or an address from ctypes.addressof.
        ("ioctl", [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong], ctypes.c_int),
        ("mmap", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                  ctypes.c_long], ctypes.c_void_p),
        ("mprotect", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int),
        ("munmap", [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_int),
        ("prctl", [ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong], ctypes.c_int)):
    getattr(libc, _name).argtypes = _args
    getattr(libc, _name).restype = _result
libc.syscall.restype = ctypes.c_long


def raw_call(function, *args):
    """(result, errno) of a libc function; errno is 0 unless the result is negative."""
    ctypes.set_errno(0)
    result = function(*args)
    return result, (ctypes.get_errno() if result < 0 else 0)


def raw_errno(call, *args):
    """Calls libc's `call` with `args`; returns (result, errno)."""
    ctypes.set_errno(0)
    result = getattr(libc, call)(*args)
    return result, ctypes.get_errno()


# ioctl numbers, encoded as x86 and asm-generic's _IOC: direction in bits 30-31, size in
# 16-29, type (the magic) in 8-15, number in 0-7. scull_ioctl.h and complete_fops.rs
# define the same numbers with _IO*; tests/test_scull_ioctl.py compiles the header to check.
IOC_NONE, IOC_WRITE, IOC_READ = 0, 1, 2
IOC_MAGIC = ord("k")
INT = ctypes.sizeof(ctypes.c_int)


def ioc(direction, nr, size=0, magic=IOC_MAGIC):
    """An ioctl command number: _IOC(direction, magic, nr, size)."""
    return (direction << 30) | (size << 16) | (magic << 8) | nr


SCULL_IOCRESET = ioc(IOC_NONE, 0)
SCULL_IOCSQUANTUM, SCULL_IOCSQSET = ioc(IOC_WRITE, 1, INT), ioc(IOC_WRITE, 2, INT)
SCULL_IOCTQUANTUM, SCULL_IOCTQSET = ioc(IOC_NONE, 3), ioc(IOC_NONE, 4)
SCULL_IOCGQUANTUM, SCULL_IOCGQSET = ioc(IOC_READ, 5, INT), ioc(IOC_READ, 6, INT)
SCULL_IOCQQUANTUM, SCULL_IOCQQSET = ioc(IOC_NONE, 7), ioc(IOC_NONE, 8)
SCULL_IOCXQUANTUM = ioc(IOC_READ | IOC_WRITE, 9, INT)
SCULL_IOCXQSET = ioc(IOC_READ | IOC_WRITE, 10, INT)
SCULL_IOCHQUANTUM, SCULL_IOCHQSET = ioc(IOC_NONE, 11), ioc(IOC_NONE, 12)
SCULL_P_IOCTSIZE, SCULL_P_IOCQSIZE = ioc(IOC_NONE, 13), ioc(IOC_NONE, 14)
COMPLETE_IOC_WAKE_ALL = ioc(IOC_NONE, 0x40)


def dev(n=0):
    return f"/dev/scull{n}"


# The access devices that hold one device each (scullpriv holds one per terminal and session).
GUARDED_DEVICES = ["scullsingle", "sculluid", "scullwuid"]


def memory_view():
    """/proc/scullmem as {name: {field: int}} in file order, the totals under 'total'."""
    rows = {}
    with open("/proc/scullmem") as f:
        for line in f:
            name, _, fields = line.partition(": ")
            rows[name] = {k: int(v) for k, v in (field.split("=") for field in fields.split())}
    return rows


@contextlib.contextmanager
def opened(path, flags=os.O_RDWR):
    """Opens `path` for the body of a `with` statement, and closes it whatever happens."""
    fd = os.open(path, flags)
    try:
        yield fd
    finally:
        os.close(fd)


def pipe_buffer_setting():
    """scull_p_buffer: the buffer a scullpipe takes at its next first open (SCULL_P_IOCQSIZE,
    on /dev/scull0 opened read-only, since opening it write-only would trim it)."""
    with opened(dev(0), os.O_RDONLY) as fd:
        return fcntl.ioctl(fd, SCULL_P_IOCQSIZE)


# The parameters scull was last loaded with by script("scull_load"); None once script()
# unloaded it. scripts/guest-test loads it with the defaults before pytest starts.
_scull_loaded_with = ()


def script(name, *args, check=True):
    """Runs one of the project's load scripts; returns the CompletedProcess."""
    global _scull_loaded_with
    result = subprocess.run([os.path.join(SCRIPTS, name), *args],
                            capture_output=True, text=True)
    if result.returncode == 0 and name == "scull_load":
        _scull_loaded_with = args
    elif name == "scull_unload":
        _scull_loaded_with = None
    if check and result.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} failed: {result.stderr}")
    return result


def module_loaded(name):
    with open("/proc/modules") as f:
        return any(line.split()[0] == name for line in f)


def scull_loaded():
    return module_loaded("scull")


def ensure_scull(*params):
    """Leaves scull loaded with exactly `params` and its nodes in place, and reloads it only
    when it is not: under emulation a reload costs seconds (every exec in the scripts does)."""
    if scull_loaded() and _scull_loaded_with == params and os.path.exists(dev(0)):
        return
    reload_scull(*params)


def scullctl(*args, check=True):
    """Runs scripts/scullctl; returns the CompletedProcess, failing the test on a nonzero exit
    status when `check` is set."""
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "scullctl"), *args],
                            capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def unload_scull():
    """Leaves scull unloaded, its nodes gone."""
    if scull_loaded():
        script("scull_unload")


def reload_scull(*params):
    """Reloads scull with `params` (strings like 'scull_quantum=1')."""
    unload_scull()
    script("scull_load", *params)


def write_dev(path, data, chunk=None):
    """Opens `path` write-only (which trims it) and writes `data`, `chunk` bytes a call."""
    with opened(path, os.O_WRONLY) as fd:
        write_all(fd, data, chunk)


def write_all(fd, data, chunk=None):
    view = memoryview(data)
    chunk = chunk or max(len(data), 1)
    while view:
        n = os.write(fd, view[:chunk])
        assert n > 0
        view = view[n:]


def read_dev(path, chunk=1 << 20):
    with opened(path, os.O_RDONLY) as fd:
        return read_all(fd, chunk)


def read_all(fd, chunk=1 << 20):
    parts = []
    while True:
        part = os.read(fd, chunk)
        if not part:
            return b"".join(parts)
        parts.append(part)


def log_lines():
    """How many lines the kernel log holds now, to read later only what comes after."""
    return len(kcheck.kernel_log().splitlines())


def new_log(since):
    """The kernel log after its first `since` lines."""
    return "\n".join(kcheck.kernel_log().splitlines()[since:])


def close_inherited_fds(keep):
    """In a forked child: closes every descriptor above stderr except those in `keep`. A copy of
    the test's own open device would otherwise keep it held for as long as the child lives."""
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


class HeldOpen:
    """A forked process that runs `body()`, reports what it returned (a word like "ok") or the
    errno name of the OSError it raised, and keeps whatever it opened until `finish()`. Of the
    test's own descriptors the child keeps only those in `keep`."""

    def __init__(self, body, keep=()):
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                close_inherited_fds(keep=(report_w, go_r, *keep))
                status = body()
            except OSError as err:
                status = errno.errorcode[err.errno]
            os.write(report_w, status.encode() + b"\n")
            os.read(go_r, 1)
            os._exit(0)
        os.close(report_w)
        os.close(go_r)
        self.report = os.fdopen(report_r)
        self.go = go_w

    def status(self):
        """What the child reported; waits for it."""
        return self.report.readline().strip()

    def finish(self):
        """Lets the child close what it holds and exit; returns its wait status."""
        os.write(self.go, b"x")
        os.close(self.go)
        _, status = os.waitpid(self.pid, 0)
        self.report.close()
        return status
