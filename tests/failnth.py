"""Systematic fault injection through /proc/thread-self/fail-nth, as syzkaller does it.

Writing N to a thread's `fail-nth` makes the Nth fault-injection point that thread reaches
fail: a slab allocation (failslab), a page allocation (fail_page_alloc) or a copy from or to
user memory (fail_usercopy). Running an operation with N = 1, 2, ... until it completes
without reaching the armed point fails each allocation and copy on its path once.

`FaultInjection` configures the three fault types for that and restores them afterwards;
`inject` runs one operation at every failure point and returns what each run did.
"""

import ctypes
import errno
import os

# `call` and `libc` are also what the test programs that import this module use.
from helpers import libc, raw_call as call

DEBUGFS = "/sys/kernel/debug"
FAULTS = ("failslab", "fail_page_alloc", "fail_usercopy")


# Most failure points one operation may have before the test gives up on it: far more than
# any path here reaches, small enough that a runaway loop ends.
MAX_POINTS = 2000


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def _read(path):
    with open(path) as f:
        return f.read().strip()


def kallsyms_range(name):
    """[start, end) of kernel function `name`: its address and the next symbol's."""
    addresses = []
    start = None
    with open("/proc/kallsyms") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3 or fields[0] == "0" * len(fields[0]):
                continue
            address = int(fields[0], 16)
            addresses.append(address)
            if fields[2] == name and fields[1] in "tT":
                start = address
    if start is None:
        raise RuntimeError(f"{name} is not in /proc/kallsyms (or addresses are hidden)")
    return start, min(a for a in addresses if a > start)


def arm(fd, n):
    """Fails the nth failure point this thread reaches from now (`fd`: its fail-nth)."""
    os.write(fd, b"%d" % n)


def disarm(fd):
    try:
        os.write(fd, b"0")
    except OSError as err:
        # Writing copies from user memory, itself a failure point: when the counter stood at
        # 1 that copy was failed, which left the counter at 0, disarmed all the same.
        assert err.errno == errno.EFAULT, err


def fired(fd):
    """True when the failure point armed through `fd` was reached (and failed)."""
    buffer = ctypes.create_string_buffer(32)
    # Reading copies to user memory, itself a failure point: if it fails, the counter stood
    # at 1, so the operation did not reach the armed point.
    n, err = call(libc.pread, fd, buffer, 32, 0)
    if n < 0:
        assert err == errno.EFAULT, err
        return False
    return int(buffer.value) == 0


class FaultInjection:
    """fail-nth for the calling thread, with every fault type armed for it.

    Allocations that may sleep count too (`ignore-gfp-wait` off), and order-0 page
    allocations. Allocations for user pages (`__GFP_HIGHMEM`) do not: failing the test
    program's own page faults would kill it, not test the driver. Each injected failure
    prints one line (`verbose` 1), no stack dump. With `only_under`, only allocations made
    under that kernel function count (the stack-trace filter).
    """

    def __init__(self, only_under=None):
        self.only_under = only_under
        self.saved = {}

    def __enter__(self):
        settings = {"ignore-gfp-wait": "N", "verbose": "1", "stacktrace-depth": "32"}
        if self.only_under:
            start, end = kallsyms_range(self.only_under)
            settings.update({"require-start": start, "require-end": end})
        for fault in FAULTS:
            for name, value in settings.items():
                path = f"{DEBUGFS}/{fault}/{name}"
                if not os.path.exists(path):
                    continue
                self.saved[path] = _read(path)
                _write(path, value)
        min_order = f"{DEBUGFS}/fail_page_alloc/min-order"
        self.saved[min_order] = _read(min_order)
        _write(min_order, 0)
        self.fd = os.open("/proc/thread-self/fail-nth", os.O_RDWR)
        return self

    def __exit__(self, *exc):
        self.disarm()
        os.close(self.fd)
        for path, value in self.saved.items():
            _write(path, value)

    def arm(self, n):
        arm(self.fd, n)

    def disarm(self):
        disarm(self.fd)

    def fired(self):
        """True when the armed failure point was reached (and failed)."""
        return fired(self.fd)

    def inject(self, operation, check):
        """Runs `operation()` with the 1st, 2nd, ... failure point failed, until one run
        completes without reaching it. `check(n, result, fired)` judges each run (and puts
        things back as needed). Returns the number of failure points on the path."""
        for n in range(1, MAX_POINTS + 1):
            self.arm(n)
            result = operation()
            fired = self.fired()
            self.disarm()
            check(n, result, fired)
            if not fired:
                return n - 1
        raise AssertionError(f"more than {MAX_POINTS} failure points: a loop that never ends?")
