"""/dev/complete against a model: a count of banked completions and the set of sleeping
readers.

A reader (a thread with its own open file and its own comm) either passes at once, taking a
banked completion, or sleeps, which is proved from /proc (tests/blocking.py). A write lets
exactly one sleeper through, or banks a completion when none sleeps; which sleeper goes is
not determined, so the model checks how many finish. COMPLETE_IOC_WAKE_ALL returns the
number of sleepers and banks nothing; a signal ends one sleeper's read with EINTR. Every
reader that finishes must have read "awoken TID (COMM)\\n" (cut to its buffer), then end of
file; between steps every reader the model says sleeps still sleeps in read().

A read with O_NONBLOCK takes a banked completion or fails with EAGAIN. poll(2) must report
POLLOUT always, and POLLIN exactly when a read would pass at once: a completion is banked,
or the file's read was woken already (its next read is end of file).
"""

import ctypes
import errno
import functools
import os
import select
import threading
import time

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

import blocking
import libcio
from helpers import COMPLETE_IOC_WAKE_ALL, opened
from libcio import describe
from modelrun import ModelMachine, run_machine

DEVICE = "/dev/complete"
MAX_SLEEPERS = 5
# How long woken readers may take to finish, generous for a TCG guest with KASAN. A failing
# run waits this long for each reader that never finishes, in each example it shrinks:
# SCULL_MODEL_FINISH_S shortens it when running the test against a broken driver on purpose.
FINISH_S = float(os.environ.get("SCULL_MODEL_FINISH_S", "10"))


def step(f):
    """Marks the machine inconsistent with the device while `f` runs: if it raises, the
    teardown cleans up without trusting the model."""
    @functools.wraps(f)
    def wrapper(self, **kwargs):
        self.trusted = False
        f(self, **kwargs)
        self.trusted = True
    return wrapper


POLL_IN = select.POLLIN | select.POLLRDNORM
POLL_OUT = select.POLLOUT | select.POLLWRNORM


def poll_now(fd):
    poller = select.poll()
    poller.register(fd, POLL_IN | POLL_OUT)
    with WATCHDOG.guard("poll(timeout 0)"):
        return poller.poll(0)


def thread_comm():
    with open("/proc/thread-self/comm") as f:
        return f.read().rstrip("\n")


class Reader:
    """A thread that opens /dev/complete, reads `size` bytes, and, if that succeeded, reads
    again (which must be end of file)."""

    def __init__(self, serial, size):
        self.comm = f"reader{serial}"
        self.size = size
        self.fd = os.open(DEVICE, os.O_RDONLY)
        self.buf = ctypes.create_string_buffer(size)
        self.thread = libcio.ReaderThread(self._run, comm=self.comm).begin()

    def _run(self):
        first = libcio.read(self.fd, ctypes.addressof(self.buf), self.size)
        if first <= 0:
            return first, None
        again = ctypes.create_string_buffer(100)
        return first, libcio.read(self.fd, ctypes.addressof(again), 100)

    def message(self):
        return f"awoken {self.thread.tid} ({self.comm})\n".encode()[:self.size]

    def check_woken(self):
        """Joins the reader and checks it read its message, then end of file."""
        first, again = self.finish()
        assert first == len(self.message()), (
            f"{self.comm}'s read({self.size}) returned {describe(first)}, the model "
            f"predicted the {len(self.message())}-byte message")
        assert self.buf.raw[:first] == self.message(), (
            f"{self.comm} read {self.buf.raw[:first]!r}, expected {self.message()!r}")
        assert again == 0, f"{self.comm}'s second read returned {describe(again)}, not EOF"

    def finish(self):
        try:
            return self.thread.finish(FINISH_S)
        finally:
            os.close(self.fd)

    def sleeping(self):
        return blocking.sleeping_in(os.getpid(), blocking.SYS_READ, self.fd, self.thread.tid)

    def __repr__(self):
        return self.comm


class CompleteMachine(ModelMachine):
    def __init__(self):
        super().__init__()
        self.done = 0           # banked completions
        self.sleepers = []      # Readers the model says sleep, oldest first
        self.serial = 0
        self.trusted = True
        self.fd = os.open(DEVICE, os.O_RDWR)

    def teardown(self):
        """Leaves no reader asleep and no completion banked, for the next example."""
        try:
            if self.trusted:
                self.clean_up_by_the_model()
            else:
                self.clean_up_blindly()
        finally:
            os.close(self.fd)

    def clean_up_by_the_model(self):
        if self.sleepers:
            self.check("ioctl(COMPLETE_IOC_WAKE_ALL) in teardown",
                       libcio.ioctl(self.fd, COMPLETE_IOC_WAKE_ALL), len(self.sleepers))
            self.let_through(len(self.sleepers))
        for _ in range(self.done):
            fd = os.open(DEVICE, os.O_RDONLY)
            buf = ctypes.create_string_buffer(100)
            try:
                with WATCHDOG.guard("a read taking a banked completion"):
                    got = libcio.read(fd, ctypes.addressof(buf), 100)
            finally:
                os.close(fd)
            assert got > 0, f"a read taking a banked completion returned {describe(got)}"
        self.done = 0

    def clean_up_blindly(self):
        """After a failure the model is not to be trusted: wakes every sleeper, then takes
        banked completions with readers until one sleeps (and ends that one by a signal)."""
        libcio.ioctl(self.fd, COMPLETE_IOC_WAKE_ALL)
        for r in self.sleepers:
            try:
                r.finish()
            except AssertionError:
                pass
        self.sleepers = []
        for _ in range(100):
            probe = self.new_reader(100)
            try:
                blocking.wait_until_sleeping(os.getpid(), blocking.SYS_READ, probe.fd,
                                             tid=probe.thread.tid)
            except AssertionError:
                probe.finish()      # it took a banked completion: look for more
                continue
            probe.thread.interrupt()
            probe.finish()
            break

    def check(self, what, got, expected):
        assert got == expected, (f"{what} returned {describe(got)}, the model predicted "
                                 f"{describe(expected)} ({self.done} banked, "
                                 f"{len(self.sleepers)} asleep)")

    def let_through(self, count):
        """Waits until `count` of the sleepers finish, checks their messages and that no
        more finished, and drops them from the model."""
        deadline = time.monotonic() + FINISH_S
        while True:
            ended = [r for r in self.sleepers if not r.thread.is_alive()]
            if len(ended) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert len(ended) == count, (f"{len(ended)} of {len(self.sleepers)} sleeping readers "
                                     f"finished, the model predicted {count}")
        for r in ended:
            self.sleepers.remove(r)
            r.check_woken()

    # Rules.

    @precondition(lambda self: len(self.sleepers) < MAX_SLEEPERS)
    @rule(size=st.one_of(st.integers(1, 30), st.just(100)))
    @step
    def start_reader(self, size):
        reader = self.new_reader(size)
        if self.done:
            self.done -= 1
            reader.check_woken()
        else:
            self.put_to_sleep(reader)

    def new_reader(self, size):
        self.serial += 1
        return Reader(self.serial, size)

    def put_to_sleep(self, reader):
        with reader.thread.ended_on_error():
            blocking.wait_until_sleeping(os.getpid(), blocking.SYS_READ, reader.fd,
                                         tid=reader.thread.tid)
        self.sleepers.append(reader)

    @rule(size=st.integers(0, 8))
    @step
    def write(self, size):
        self.check(f"write({size})", libcio.write(self.fd, b"x" * size, size), size)
        if self.sleepers:
            self.let_through(1)
        else:
            self.done += 1

    @rule()
    @step
    def wake_all(self):
        self.check("ioctl(COMPLETE_IOC_WAKE_ALL)",
                   libcio.ioctl(self.fd, COMPLETE_IOC_WAKE_ALL), len(self.sleepers))
        self.let_through(len(self.sleepers))

    # Writes and WAKE_ALL end sleepers as fast as start_reader makes them, so a rule that
    # waited for one ran only 3 times in a whole debug-kernel run. With none asleep and no
    # completion banked, it puts a reader to sleep itself.
    @precondition(lambda self: self.sleepers or not self.done)
    @rule(which=st.integers(0, MAX_SLEEPERS - 1))
    @step
    def interrupt(self, which):
        if not self.sleepers:
            self.put_to_sleep(self.new_reader(100))
        reader = self.sleepers.pop(which % len(self.sleepers))
        reader.thread.interrupt()
        first, again = reader.finish()
        self.check(f"{reader}'s read interrupted by a signal", first, -errno.EINTR)

    @rule(size=st.one_of(st.integers(1, 30), st.just(100)))
    @step
    def nonblocking_read(self, size):
        """Takes a banked completion without sleeping, or fails with EAGAIN; a file whose read
        passed polls readable (end of file) and reads end of file."""
        with opened(DEVICE, os.O_RDONLY | os.O_NONBLOCK) as fd:
            buf = ctypes.create_string_buffer(size)
            with WATCHDOG.guard(f"read({size}) with O_NONBLOCK"):
                got = libcio.read(fd, ctypes.addressof(buf), size)
            if not self.done:
                self.check(f"read({size}) with O_NONBLOCK", got, -errno.EAGAIN)
                self.check_poll(fd, readable=False)
                return
            self.done -= 1
            message = f"awoken {threading.get_native_id()} ({thread_comm()})\n".encode()[:size]
            self.check(f"read({size}) with O_NONBLOCK", got, len(message))
            assert buf.raw[:got] == message, f"read {buf.raw[:got]!r}, expected {message!r}"
            self.check_poll(fd, readable=True)
            self.check("read() after a woken read", libcio.read(fd, ctypes.addressof(buf), size), 0)

    def check_poll(self, fd, readable):
        got = dict(poll_now(fd)).get(fd, 0)
        expected = POLL_OUT | (POLL_IN if readable else 0)
        assert got == expected, (f"poll() reported {got:#x}, the model predicted {expected:#x} "
                                 f"({self.done} banked, {len(self.sleepers)} asleep)")

    @rule()
    @step
    def read_nothing(self):
        """A read of 0 bytes returns 0 at once and takes no completion."""
        with opened(DEVICE, os.O_RDONLY) as fd:
            with WATCHDOG.guard("read(0)"):
                got = libcio.read(fd, ctypes.addressof(ctypes.create_string_buffer(1)), 0)
        self.check("read(0)", got, 0)

    @precondition(lambda self: self.done)
    @rule()
    @step
    def read_into_bad_buffer(self):
        """A reader let through with a bad buffer gets EFAULT and hands the completion back."""
        with opened(DEVICE, os.O_RDONLY) as fd:
            with WATCHDOG.guard("read(unmapped buffer) with a completion banked"):
                got = libcio.read(fd, libcio.UNMAPPED, 100)
        self.check("read(unmapped buffer)", got, -errno.EFAULT)

    @rule(nr=st.integers(0, 0xff).filter(lambda nr: nr != 0x40))
    @step
    def unknown_ioctl(self, nr):
        cmd = (ord("k") << 8) | nr
        self.check(f"ioctl({cmd:#x})", libcio.ioctl(self.fd, cmd), -errno.ENOTTY)

    @invariant()
    @step
    def poll_reports_what_a_read_would_do(self):
        self.check_poll(self.fd, readable=self.done > 0)

    @invariant()
    @step
    def sleepers_sleep(self):
        for r in self.sleepers:
            assert r.sleeping(), (
                f"{r} should sleep in read(), but its read " + (
                    "is awake" if r.thread.is_alive() else
                    f"returned {r.thread.outcome}") + f" ({self.done} banked, "
                f"{len(self.sleepers)} asleep in the model)")


WATCHDOG = None


def test_complete_matches_its_model(capsys):
    global WATCHDOG
    with libcio.interruptible_signals():
        WATCHDOG = libcio.Watchdog(seconds=5)
        try:
            run_machine(CompleteMachine, examples=30, steps=30, capsys=capsys)
        finally:
            WATCHDOG.stop()
