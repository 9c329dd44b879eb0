"""Systematic fault injection through /proc/thread-self/fail-nth, as syzkaller does it.

Writing N to a thread's `fail-nth` makes the Nth fault-injection point that thread reaches
fail: a slab allocation (failslab), a page allocation (fail_page_alloc) or a copy from or to
user memory (fail_usercopy). Running an operation with N = 1, 2, ... until it completes
without reaching the armed point fails each allocation and copy on its path once.

`FaultInjection` configures the three fault types for that and restores them afterwards;
`inject` runs one operation at every failure point and returns what each run did.

One failed allocation is not what a driver sees when memory runs out: `kvrealloc` falls back
to a second `kmalloc` (and `vmalloc` above a page) when its first try fails, and that retry
succeeds. `FaultInjection(module=..., exhaust=True)` makes the Nth allocation fail *and
every later one* of the same operation, as when memory is gone: fail-nth counts down to the
Nth point, and from there the task's `make-it-fail` with probability 100 fails the rest. The
module's code must be on the stack (the stack-trace filter), so that only the driver's
allocations fail, never the page tables of the test's own page faults.
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


def _kallsyms():
    """(address, type, name, module or None) of every symbol whose address is shown."""
    with open("/proc/kallsyms") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3 or fields[0] == "0" * len(fields[0]):
                continue
            module = fields[3].strip("[]") if len(fields) > 3 else None
            yield int(fields[0], 16), fields[1], fields[2], module


def _range_to_next_symbol(symbols, first, last):
    """[first, the address of the symbol after `last`)."""
    return first, min((a for a, *_ in symbols if a > last), default=last + (1 << 20))


def kallsyms_range(name):
    """[start, end) of kernel function `name`: its address and the next symbol's."""
    symbols = list(_kallsyms())
    starts = [a for a, kind, symbol, _ in symbols if symbol == name and kind in "tT"]
    if not starts:
        raise RuntimeError(f"{name} is not in /proc/kallsyms (or addresses are hidden)")
    return _range_to_next_symbol(symbols, starts[-1], starts[-1])


def module_text_range(name):
    """[start, end) around the code of module `name`: from its first function to the symbol
    after its last one, for the stack-trace filter."""
    symbols = list(_kallsyms())
    starts = [a for a, kind, _, module in symbols if module == name and kind in "tT"]
    if not starts:
        raise RuntimeError(f"no function of module {name} in /proc/kallsyms (not loaded?)")
    return _range_to_next_symbol(symbols, min(starts), max(starts))


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

    def __init__(self, only_under=None, module=None, exhaust=False):
        self.only_under = only_under
        self.module = module
        self.exhaust = exhaust
        self.saved = {}
        self.make_it_fail = None

    def _set(self, path, value):
        # A knob that is missing would leave the injection silently off: fail instead.
        assert os.path.exists(path), f"{path} missing: is the kernel built for fault injection?"
        self.saved.setdefault(path, _read(path))
        _write(path, value)

    def __enter__(self):
        settings = {"ignore-gfp-wait": "N", "verbose": "1", "stacktrace-depth": "32"}
        if self.only_under:
            start, end = kallsyms_range(self.only_under)
            settings.update({"require-start": start, "require-end": end})
        if self.module:
            start, end = module_text_range(self.module)
            settings.update({"require-start": start, "require-end": end})
        for fault in FAULTS:
            for name, value in settings.items():
                if name == "ignore-gfp-wait" and fault == "fail_usercopy":
                    continue  # copies have no gfp flags
                self._set(f"{DEBUGFS}/{fault}/{name}", value)
        if self.exhaust:
            # Allocations only: a copy that fails once is already what a driver sees. The task
            # filter goes on first and the probability last (and back in reverse order), or
            # every task's allocations would fail in between.
            for fault in ("failslab", "fail_page_alloc"):
                for name, value in {"task-filter": "Y", "interval": 1, "times": -1,
                                    "space": 0, "probability": 100}.items():
                    self._set(f"{DEBUGFS}/{fault}/{name}", value)
            self.make_it_fail = os.open("/proc/thread-self/make-it-fail", os.O_WRONLY)
        min_order = f"{DEBUGFS}/fail_page_alloc/min-order"
        self.saved[min_order] = _read(min_order)
        _write(min_order, 0)
        self.fd = os.open("/proc/thread-self/fail-nth", os.O_RDWR)
        return self

    def __exit__(self, *exc):
        self._exhausting(False)
        self.disarm()
        os.close(self.fd)
        if self.make_it_fail is not None:
            os.close(self.make_it_fail)
        for path, value in reversed(self.saved.items()):
            _write(path, value)

    def _exhausting(self, on):
        """With `exhaust`, turns on or off the failing of every allocation after the Nth."""
        if self.make_it_fail is not None:
            os.write(self.make_it_fail, b"1" if on else b"0")

    def arm(self, n):
        arm(self.fd, n)
        self._exhausting(True)

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
            # At once: the checks below must not have their own allocations failed.
            self._exhausting(False)
            fired = self.fired()
            self.disarm()
            check(n, result, fired)
            if not fired:
                return n - 1
        raise AssertionError(f"more than {MAX_POINTS} failure points: a loop that never ends?")
