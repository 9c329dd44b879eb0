"""No caller is trapped behind a stalled one.

A write whose data lies in a page that nobody will ever provide (a mapping of a FUSE file
whose daemon never answers READ) sleeps in the page fault, inside the driver, holding the
device's lock. Everyone else who needs that lock must still be able to leave: they sleep
interruptibly (state S, as LDD3's down_interruptible), a signal ends the wait with EINTR and
SIGKILL at once. What only reads the device's state (the /proc views, lseek(SEEK_END)) does
not wait at all.

Each caller is a forked child (no exec: seconds each in the debug guest). Its sleep is read
from /proc (tests/blocking.py), never assumed from a delay.
"""

import contextlib
import ctypes
import errno
import json
import mmap
import os
import select
import signal
import time

import pytest

import blocking
from helpers import dev, libc, raw_call
from stalled_fuse import StalledFuse

# What the issue asks: a killed caller is gone within this.
KILLED_WITHIN_S = 1.0
PIPE = "/dev/scullpipe0"
SYS_POLL = 7


class Child:
    """A forked process that runs `body()` and reports what it returned, or the errno name
    of the OSError it raised, as one line."""

    def __init__(self, body):
        report_r, report_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(report_r)
                try:
                    status = str(body())
                except OSError as err:
                    status = errno.errorcode.get(err.errno, str(err.errno))
                os.write(report_w, status.encode() + b"\n")
            finally:
                os._exit(0)
        os.close(report_w)
        self.report = os.fdopen(report_r)
        self.status = None

    def result(self, timeout=blocking.REACH_S):
        """What the child reported, once it has; fails if it has not within `timeout`."""
        ready, _, _ = select.select([self.report], [], [], timeout)
        assert ready, f"child {self.pid} still in its call after {timeout} s: " \
            f"state {blocking.state(self.pid)}, wchan {blocking.wchan(self.pid)}"
        return self.report.readline().strip()

    def exited(self):
        """Whether the child has exited (and is reaped), without waiting."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None

    def kill_and_reap(self):
        """Kills the child and waits for it: only once nothing is stalled, since a child
        sleeping uninterruptibly behind a stalled writer dies only when that writer leaves."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
        self.report.close()


class Stalled:
    """Writers stalled on /dev/scull0 and /dev/scullpipe0, and the children a test starts
    behind them, which are reaped only after the stall ends (`start`)."""

    def __init__(self, fuse):
        self.fuse = fuse
        self.writers = [stall_write(fuse, "scull", dev(0)), stall_write(fuse, "pipe", PIPE)]
        self.children = []

    def start(self, body):
        child = Child(body)
        self.children.append(child)
        return child


def stall_write(fuse, name, path):
    """A child that writes one page from file `name` of `fuse` to `path`: it sleeps in the
    fault with the device's lock held, and only aborting the connection ends its write."""
    def body():
        fd = os.open(path, os.O_RDWR)
        with open(fuse.path(name), "rb") as source:
            page = mmap.mmap(source.fileno(), mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        return os.write(fd, page)
    writer = Child(body)
    assert fuse.wait_read() == f"{name} 0"
    return writer


@pytest.fixture
def stalled():
    """Writers stalled in a fault on /dev/scull0 and on /dev/scullpipe0, holding each
    device's lock; at the end the daemon dies, the writes fail and nothing is kept."""
    fuse = StalledFuse(["scull", "pipe"])
    stall = None
    try:
        stall = Stalled(fuse)
        yield stall
    finally:
        fuse.close()
        results = []
        if stall is not None:
            results = [writer.result() for writer in stall.writers]
            for child in stall.writers + stall.children:
                child.kill_and_reap()
    assert results == ["EFAULT", "EFAULT"], "each write fails on the page it could not read"
    # Nothing written, nothing kept.
    with open("/proc/scullmem") as f:
        scull0 = f.read().splitlines()[0]
    assert " size=0 allocated=0 " in scull0, scull0


def raw(function, *args):
    """A libc call that fails with EINTR where Python's os calls would retry."""
    result, err = raw_call(function, *args)
    if result < 0:
        raise OSError(err, os.strerror(err))
    return result


def read_one(path):
    fd = os.open(path, os.O_RDONLY)
    return raw(libc.read, fd, ctypes.create_string_buffer(100), 100)


def write_one(path):
    fd = os.open(path, os.O_RDWR)
    return raw(libc.write, fd, b"x", 1)


def open_write_only(path):
    return raw(libc.open, path.encode(), os.O_WRONLY)


def poll_readable(path):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    fds = (ctypes.c_int * 2)(fd, select.POLLIN)  # struct pollfd: fd, events, revents
    return raw(libc.poll, fds, 1, -1)


CALLERS = [
    ("read", dev(0), blocking.SYS_READ, read_one),
    ("write", dev(0), blocking.SYS_WRITE, write_one),
    ("write-only open (trim)", dev(0), blocking.SYS_OPENAT, open_write_only),
    ("read", PIPE, blocking.SYS_READ, read_one),
    ("write", PIPE, blocking.SYS_WRITE, write_one),
    ("poll", PIPE, SYS_POLL, poll_readable),
]


@pytest.mark.parametrize("what, path, nr, call", CALLERS,
                         ids=[f"{path.rsplit('/', 1)[1]}-{what.split()[0]}"
                              for what, path, _, _ in CALLERS])
def test_a_caller_behind_a_stalled_writer_ends_on_sigkill(stalled, what, path, nr, call):
    victim = stalled.start(lambda: call(path))
    blocking.wait_until_sleeping(victim.pid, nr, what=f"{what} of {path}")
    killed_at = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    while not victim.exited():
        took = time.monotonic() - killed_at
        assert took < KILLED_WITHIN_S, \
            f"{what} of {path}: still there {took:.2f} s after SIGKILL, state " \
            f"{blocking.state(victim.pid)}"
        time.sleep(0.01)
    assert os.WIFSIGNALED(victim.status) and os.WTERMSIG(victim.status) == signal.SIGKILL


def test_a_signal_ends_the_wait_for_a_stalled_writers_lock_with_eintr(stalled):
    """LDD3's down_interruptible: ERESTARTSYS, which is EINTR for a handler without
    SA_RESTART (CPython installs its handlers so)."""
    def body():
        signal.signal(signal.SIGUSR1, lambda *_: None)
        return read_one(dev(0))
    victim = stalled.start(body)
    blocking.wait_until_sleeping(victim.pid, blocking.SYS_READ, what="read of scull0")
    os.kill(victim.pid, signal.SIGUSR1)
    assert victim.result() == "EINTR"


def test_what_only_looks_never_waits_for_a_stalled_writer(stalled):
    """The /proc views and lseek(SEEK_END) read what the last completed call left: the
    stalled write has not happened yet."""
    def views():
        with open("/proc/scullmem") as mem, open("/proc/scullseq") as seq:
            return json.dumps([mem.read(), seq.read()])
    mem, seq = json.loads(stalled.start(views).result())
    assert mem.splitlines()[0].startswith("scull0: ") and " size=0 " in mem.splitlines()[0]
    assert mem == seq, "with nothing changing, both views show the same"

    def seek_end():
        fd = os.open(dev(0), os.O_RDONLY)
        return os.lseek(fd, 0, os.SEEK_END)
    assert stalled.start(seek_end).result() == "0"
