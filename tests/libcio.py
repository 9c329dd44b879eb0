"""Raw system calls for the model tests: libc's read, write, readv, writev and ioctl through
ctypes, so that every errno is seen as the kernel returned it (Python's os.read and friends
retry EINTR silently), plus what the tests need to never hang on a driver bug:

- `Watchdog`: interrupts the main thread's system call (EINTR) when it blocks longer than a
  bound, for calls that the model says cannot block;
- `ReaderThread`: one blocking call in a thread of its own, whose sleep can be proved with
  tests/blocking.py and which a signal ends;
- `GuardPage`: a page of memory followed by an inaccessible one, for copies that fault part
  way through.
"""

import contextlib
import ctypes
import errno
import signal
import threading
import time

from helpers import libc

PAGE = 4096
PR_SET_NAME = 15
# An address in no user mapping (page 0 is never mapped) and one that is not a user
# address at all (access_ok() refuses it before the driver is called).
UNMAPPED = 1
KERNEL_ADDRESS = 0xffffffff81000000

# SIGUSR1 ends a ReaderThread's sleep; SIGUSR2 is the Watchdog's. Neither restarts the call.
INTERRUPT = signal.SIGUSR1
WATCHDOG = signal.SIGUSR2


def result(ret):
    """A libc call's outcome as the kernel returned it: the count, or -errno."""
    return ret if ret >= 0 else -ctypes.get_errno()


def call(func, *args):
    ctypes.set_errno(0)
    return result(func(*args))


def describe(outcome):
    """'3' or 'EAGAIN', for messages."""
    return str(outcome) if outcome >= 0 else errno.errorcode.get(-outcome, str(outcome))


def read(fd, address, n):
    return call(libc.read, fd, address, n)


def write(fd, address, n):
    return call(libc.write, fd, address, n)


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def readv(fd, sizes):
    """readv into buffers of `sizes`; returns (outcome, their concatenated contents)."""
    buffers = [ctypes.create_string_buffer(max(size, 1)) for size in sizes]
    iov = (_Iovec * max(len(sizes), 1))(
        *[_Iovec(ctypes.addressof(b), size) for b, size in zip(buffers, sizes)])
    outcome = call(libc.readv, fd, ctypes.addressof(iov), len(sizes))
    return outcome, b"".join(b.raw[:size] for b, size in zip(buffers, sizes))


def writev(fd, pieces):
    buffers = [ctypes.create_string_buffer(p, max(len(p), 1)) for p in pieces]
    iov = (_Iovec * max(len(pieces), 1))(
        *[_Iovec(ctypes.addressof(b), len(p)) for b, p in zip(buffers, pieces)])
    return call(libc.writev, fd, ctypes.addressof(iov), len(pieces))


def ioctl(fd, cmd, arg=0):
    return call(libc.ioctl, fd, cmd, arg)


@contextlib.contextmanager
def interruptible_signals():
    """No-op handlers for INTERRUPT and WATCHDOG, without SA_RESTART, so that either one
    makes a blocked system call fail with EINTR. Must be entered in the main thread."""
    old = {sig: signal.signal(sig, lambda *_: None) for sig in (INTERRUPT, WATCHDOG)}
    for sig in old:
        signal.siginterrupt(sig, True)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class Watchdog:
    """Sends WATCHDOG to the main thread when a `guard()`ed call lasts longer than `seconds`:
    a call the model says returns at once then fails with EINTR instead of hanging the run.
    (SIGALRM is left alone: pytest-timeout may use it.)"""

    def __init__(self, seconds=10):
        self.seconds = seconds
        self.target = threading.get_ident()
        self.cond = threading.Condition()
        self.deadline = None
        self.fired = False
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self.thread.start()

    def _run(self):
        with self.cond:
            while not self.stopped:
                if self.deadline is None:
                    self.cond.wait()
                    continue
                left = self.deadline - time.monotonic()
                if left > 0:
                    self.cond.wait(left)
                    continue
                self.fired = True
                self.deadline = None
                signal.pthread_kill(self.target, WATCHDOG)

    @contextlib.contextmanager
    def guard(self, what):
        with self.cond:
            self.deadline = time.monotonic() + self.seconds
            self.fired = False
            self.cond.notify()
        try:
            yield
        finally:
            with self.cond:
                self.deadline = None
                fired = self.fired
                self.cond.notify()
        assert not fired, f"{what} blocked for {self.seconds} s although the model said " \
                          "it returns at once"

    def stop(self):
        with self.cond:
            self.stopped = True
            self.cond.notify()
        self.thread.join()


class ReaderThread(threading.Thread):
    """Runs `body()` (a blocking call) in a thread named `comm` (its task's comm, too) and
    keeps its result. `tid` is the task's id, for tests/blocking.py, once `started` is set."""

    def __init__(self, body, comm=None):
        super().__init__(daemon=True)
        self.body = body
        self.comm = comm
        self.tid = None
        self.outcome = None
        self.error = None
        self.started_event = threading.Event()

    def run(self):
        self.tid = threading.get_native_id()
        if self.comm:
            libc.prctl(PR_SET_NAME, self.comm.encode(), 0, 0, 0)
        self.started_event.set()
        try:
            self.outcome = self.body()
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def begin(self):
        self.start()
        self.started_event.wait()
        return self

    def interrupt(self):
        signal.pthread_kill(self.ident, INTERRUPT)

    @contextlib.contextmanager
    def ended_on_error(self):
        """Ends the thread (by signals) if the block raises, so that no thread stays asleep
        in the driver after a failed step."""
        try:
            yield
        except BaseException:
            while self.is_alive():
                self.interrupt()
                self.join(0.5)
            raise

    def finish(self, timeout=10):
        """Joins the thread; if it is still blocked after `timeout`, interrupts it until it
        ends and fails. Returns its body's result."""
        self.join(timeout)
        if self.is_alive():
            while self.is_alive():
                self.interrupt()
                self.join(0.5)
            raise AssertionError(f"thread {self.tid} still blocked after {timeout} s "
                                 f"(ended by a signal: {self.outcome!r})")
        if self.error is not None:
            raise self.error
        return self.outcome


class GuardPage:
    """A read-write page followed by an inaccessible (PROT_NONE) one. `at(k)` is the address
    k bytes before the inaccessible page: a copy of more than k bytes from there faults
    after exactly k."""

    def __init__(self):
        base = libc.mmap(None, 2 * PAGE, 3, 0x22, -1, 0)  # PROT_READ|WRITE, PRIVATE|ANONYMOUS
        assert base not in (None, ctypes.c_void_p(-1).value), "mmap failed"
        assert libc.mprotect(base + PAGE, PAGE, 0) == 0, "mprotect failed"
        self.base = base

    def at(self, k):
        assert 0 <= k <= PAGE
        return self.base + PAGE - k

    def fill(self, k, data):
        """Writes data (k bytes) just before the inaccessible page."""
        assert len(data) == k
        ctypes.memmove(self.at(k), data, k)

    def contents(self, k, n):
        return ctypes.string_at(self.at(k), n)

    def close(self):
        libc.munmap(self.base, 2 * PAGE)
