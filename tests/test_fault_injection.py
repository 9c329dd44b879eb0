"""Every allocation and user copy on each driver path, failed in turn (syzkaller's fail-nth).

For each operation, the 1st, 2nd, ... failure point is failed until a run completes without
reaching it. Each run must end in a clean error (ENOMEM, EFAULT) or a short count, leave the
device exactly as the model of that outcome says, and leave it working. Module init gets the
same: a load with each allocation of scull's or complete's init failed must fail cleanly and
leave nothing behind, and the next load must work. kmemleak, KASAN and lockdep watch all of
it (scripts/guest-test reads their verdict after the suite).

The matrix of operations and failure points is printed at the end of each test.
"""

import collections
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import stat
import subprocess
import sys
import threading

import pytest

import blocking
import kcheck
from failnth import FaultInjection
from helpers import (QSET, QUANTUM, REPO, SCULL_IOCGQSET, SCULL_IOCGQUANTUM, SCULL_IOCHQSET,
                     SCULL_IOCHQUANTUM, SCULL_IOCQQSET, SCULL_IOCQQUANTUM, SCULL_IOCRESET,
                     SCULL_IOCSQSET, SCULL_IOCSQUANTUM, SCULL_IOCTQSET, SCULL_IOCTQUANTUM,
                     SCULL_IOCXQSET, SCULL_IOCXQUANTUM, TESTS, libc, memory_view, module_loaded,
                     opened, raw_call, script)

# Needs CONFIG_FAULT_INJECTION, CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC and
# CONFIG_FAULT_INJECTION_USERCOPY, which only the debug kernel has.
pytestmark = pytest.mark.debug_kernel

SCULL = "/dev/scull0"
PIPE = "/dev/scullpipe0"
COMPLETE = "/dev/complete"
CLEAN = {errno.ENOMEM, errno.EFAULT}


def pattern(n, seed=0):
    return bytes((seed + i * 7) % 251 for i in range(n))


def scullmem(device=0):
    return memory_view()[f"scull{device}"]


def assert_budget_exact():
    """`used=` is exactly what the devices hold: no charge outlives what it paid for."""
    rows = memory_view()
    allocated = sum(row["allocated"] for name, row in rows.items() if name != "total")
    used = rows["total"]["used"]
    assert used == allocated, f"used={used} but the devices hold {allocated}: {rows}"


def device_bytes(path=SCULL):
    with open(path, "rb") as f:
        return f.read()


def trim(path=SCULL):
    os.close(os.open(path, os.O_WRONLY))


def fill(data, at=0, path=SCULL):
    trim(path)
    with opened(path, os.O_WRONLY) as fd:
        assert os.pwrite(fd, data, at) == len(data)


class Matrix:
    """Outcomes per operation: how many failure points its path has, and what runs gave."""

    rows = []

    def __init__(self, name):
        self.name = name
        self.outcomes = collections.Counter()
        self.log_lines = len(kcheck.kernel_log().splitlines())

    def saw(self, outcome):
        self.outcomes[outcome] += 1

    def done(self, points, reachable=True):
        """Records the row. A row whose path can fail must have reached a failure point;
        one that declares its path free of allocations and copies (`reachable=False`) must
        have reached none, so that one added later is noticed and tested."""
        log = kcheck.kernel_log().splitlines()[self.log_lines:]
        kinds = collections.Counter(line.split("name ", 1)[1].split(",")[0]
                                    for line in log if "name fail" in line)
        outcomes = ", ".join(f"{k} x{v}" for k, v in sorted(self.outcomes.items()))
        Matrix.rows.append(f"{self.name:<34} {points:>4} points  {outcomes}"
                           f"  [{', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}]")
        if reachable:
            assert points >= 1, f"{self.name}: no failure point reached: nothing was tested"
        else:
            assert points == 0, f"{self.name}: now has {points} failure points: test them"


@pytest.fixture
def matrix(capsys):
    Matrix.rows = []
    yield Matrix
    with capsys.disabled():
        print("\nfault injection: operation, failure points on its path, outcomes "
              "[injected failures by type]")
        for row in Matrix.rows:
            print("  " + row)


def outcome(result, err):
    if result < 0:
        assert err in CLEAN, f"unclean error {errno.errorcode.get(err, err)}"
        return errno.errorcode[err]
    return "ok"


def transfer_outcome(n, err, count, fired):
    """The outcome of a read or write of `count` bytes that returned `n` (errno `err`): a
    clean error, "ok" or "short". A run that reached no failure point must have moved all."""
    assert fired or n == count, f"returned {n} (errno {err}) of {count} with nothing failed"
    return outcome(n, err) if n < 0 else "ok" if n == count else "short"


def run(fi, matrix_row, prepare, operation, check, reachable=True):
    """inject() with `prepare()` run, unarmed, before each armed `operation()`."""
    state = {}

    def armed():
        return operation(state)

    def judge(n, result, fired):
        check(state, result, fired)
        if fired:
            prepare(state)

    prepare(state)
    points = fi.inject(armed, judge)
    matrix_row.done(points, reachable)


# scull memory devices.

@pytest.mark.timeout(900)
def test_scull_operations_under_every_failure_point(matrix):
    buffer = ctypes.create_string_buffer(1 << 16)
    with FaultInjection() as fi:
        # Open write-only: trims. A failed open must not have emptied the device.
        data = pattern(10000)
        row = matrix("open O_WRONLY (trim)")

        def prepare_open(state):
            fill(data)

        def open_write_only(state):
            return raw_call(libc.open, SCULL.encode(), os.O_WRONLY)

        def check_open(state, result, fired):
            fd, err = result
            row.saw(outcome(fd, err))
            if fd >= 0:
                os.close(fd)
                assert scullmem()["size"] == 0
            else:
                assert device_bytes() == data
        run(fi, row, prepare_open, open_write_only, check_open)

    # Writes: at 0 into an empty device, inside the data, past the end (a hole between), and
    # across into a new quantum set. From the Nth of scull's allocations on, every one fails,
    # as when memory is gone (a single failure is hidden by kvrealloc's fallback). A row
    # that allocates must see ENOMEM come back; one that only copies, a short count.
    with FaultInjection(module="scull", exhaust=True) as fi:
        qset_bytes = QUANTUM * QSET
        cases = [
            ("write at 0", b"", 0, 10000, "ENOMEM"),
            ("write inside the data", pattern(12000, 1), 2000, 5000, "short"),
            ("write past the end", pattern(4000, 2), 10000, 6000, "ENOMEM"),
            ("write into a new quantum set", pattern(100, 3), 3 * qset_bytes - 1000, 5000,
             "ENOMEM"),
        ]
        for name, before, at, count, must_see in cases:
            row = matrix(name)
            payload = pattern(count, 9)
            ctypes.memmove(buffer, payload, count)

            def prepare_write(state, before=before):
                fill(before)
                state["fd"] = os.open(SCULL, os.O_RDWR)

            def write(state, at=at, count=count):
                return raw_call(libc.pwrite, state["fd"], buffer, count, at)

            def check_write(state, result, fired, before=before, at=at, count=count,
                            payload=payload):
                n, err = result
                os.close(state["fd"])
                row.saw(transfer_outcome(n, err, count, fired))
                written = max(n, 0)
                expected = bytearray(before)
                end = at + written
                if written:
                    expected.extend(bytes(max(0, end - len(expected))))
                    expected[at:end] = payload[:written]
                assert device_bytes() == bytes(expected), (name, n, err)
                # Exactly the quanta that hold written bytes, nothing allocated in vain.
                quanta = {i // QUANTUM for i in range(len(before))}
                quanta |= set(range(at // QUANTUM, (end - 1) // QUANTUM + 1)) if written else set()
                usage = scullmem()
                assert (usage["size"], usage["quanta"], usage["qsets"]) == (
                    len(expected), len(quanta), len({q // QSET for q in quanta})), (name, n)
                assert_budget_exact()
            run(fi, row, prepare_write, write, check_write)
            assert row.outcomes[must_see] > 0, \
                f"{name}: no run ended in {must_see}: {dict(row.outcomes)}"
    trim()
    assert_budget_exact()

    with FaultInjection() as fi:
        # Read.
        data = pattern(12000, 4)
        row = matrix("read")

        def prepare_read(state):
            if device_bytes() != data:
                fill(data)
            ctypes.memset(buffer, 0, len(data))
            state["fd"] = os.open(SCULL, os.O_RDONLY)

        def read(state):
            return raw_call(libc.pread, state["fd"], buffer, len(data), 0)

        def check_read(state, result, fired):
            n, err = result
            os.close(state["fd"])
            assert n >= 0 or err != errno.ENOMEM, "a read allocated memory"
            row.saw(transfer_outcome(n, err, len(data), fired))
            if n > 0:
                assert buffer.raw[:n] == data[:n]
            assert device_bytes() == data
        run(fi, row, prepare_read, read, check_read)


def vectored(call, *args):
    """(result, errno) of os.readv or os.writev, whose failures are exceptions."""
    try:
        return call(*args), 0
    except OSError as err:
        return -1, err.errno


def test_vectored_io_under_every_failure_point(matrix):
    """readv and writev take read's and write's paths, a segment at a time, with up to
    eight segments (beyond that the VFS allocates an iovec array of its own). A writev
    that runs out of memory on its first quantum is ENOMEM, on a later one a short count;
    a readv never allocates."""
    segments = [pattern(3000, k) for k in range(3)]
    payload = b"".join(segments)
    with FaultInjection(module="scull", exhaust=True) as fi:
        row = matrix("writev across quanta")

        def prepare_writev(state):
            trim()
            state["fd"] = os.open(SCULL, os.O_WRONLY)

        def writev(state):
            return vectored(os.pwritev, state["fd"], segments, 0)

        def check_writev(state, result, fired):
            n, err = result
            os.close(state["fd"])
            row.saw(transfer_outcome(n, err, len(payload), fired))
            assert device_bytes() == payload[:max(n, 0)], (n, err)
            assert_budget_exact()
        run(fi, row, prepare_writev, writev, check_writev)
        assert row.outcomes["ENOMEM"] > 0 and row.outcomes["short"] > 0, dict(row.outcomes)

    fill(payload)
    with FaultInjection() as fi:
        row = matrix("readv across quanta")
        buffers = [bytearray(3000) for _ in segments]

        def prepare_readv(state):
            for buffer in buffers:
                buffer[:] = bytes(len(buffer))
            state["fd"] = os.open(SCULL, os.O_RDONLY)

        def readv(state):
            return vectored(os.preadv, state["fd"], buffers, 0)

        def check_readv(state, result, fired):
            n, err = result
            os.close(state["fd"])
            assert n >= 0 or err != errno.ENOMEM, "a read allocated memory"
            row.saw(transfer_outcome(n, err, len(payload), fired))
            assert b"".join(buffers)[:max(n, 0)] == payload[:max(n, 0)]
            assert device_bytes() == payload
        run(fi, row, prepare_readv, readv, check_readv)
    trim()
    assert_budget_exact()


def test_ioctls_under_every_failure_point(matrix):
    value = ctypes.c_int()
    commands = [
        # (name, cmd, argument, new quantum/qset after success, result on success)
        ("SCULL_IOCRESET", SCULL_IOCRESET, None, (QUANTUM, QSET), 0),
        ("SCULL_IOCSQUANTUM", SCULL_IOCSQUANTUM, 2000, (2000, QSET), 0),
        ("SCULL_IOCSQSET", SCULL_IOCSQSET, 20, (QUANTUM, 20), 0),
        ("SCULL_IOCTQUANTUM", SCULL_IOCTQUANTUM, 3000, (3000, QSET), 0),
        ("SCULL_IOCTQSET", SCULL_IOCTQSET, 30, (QUANTUM, 30), 0),
        ("SCULL_IOCGQUANTUM", SCULL_IOCGQUANTUM, -1, (QUANTUM, QSET), 0),
        ("SCULL_IOCGQSET", SCULL_IOCGQSET, -1, (QUANTUM, QSET), 0),
        ("SCULL_IOCQQUANTUM", SCULL_IOCQQUANTUM, None, (QUANTUM, QSET), QUANTUM),
        ("SCULL_IOCQQSET", SCULL_IOCQQSET, None, (QUANTUM, QSET), QSET),
        ("SCULL_IOCXQUANTUM", SCULL_IOCXQUANTUM, 5000, (5000, QSET), 0),
        ("SCULL_IOCXQSET", SCULL_IOCXQSET, 50, (QUANTUM, 50), 0),
        ("SCULL_IOCHQUANTUM", SCULL_IOCHQUANTUM, 6000, (6000, QSET), QUANTUM),
        ("SCULL_IOCHQSET", SCULL_IOCHQSET, 60, (QUANTUM, 60), QSET),
    ]
    fd = os.open(SCULL, os.O_RDONLY)
    try:
        with FaultInjection() as fi:
            for name, cmd, arg, after, returns in commands:
                row = matrix(name)
                by_pointer = cmd >> 30 != 0

                def prepare(state, arg=arg):
                    fcntl.ioctl(fd, SCULL_IOCRESET)
                    value.value = arg if arg is not None else 0

                def operation(state, cmd=cmd, arg=arg, by_pointer=by_pointer):
                    argument = ctypes.addressof(value) if by_pointer else (arg or 0)
                    return raw_call(libc.ioctl, fd, cmd, argument)

                def check(state, result, fired, name=name, cmd=cmd, after=after,
                          returns=returns, by_pointer=by_pointer):
                    n, err = result
                    row.saw(outcome(n, err))
                    now = (fcntl.ioctl(fd, SCULL_IOCQQUANTUM), fcntl.ioctl(fd, SCULL_IOCQQSET))
                    if n < 0:
                        # A failed call changes nothing.
                        assert now == (QUANTUM, QSET), (name, now)
                        return
                    assert (n, now) == (returns, after), name
                    if cmd in (SCULL_IOCGQUANTUM, SCULL_IOCXQUANTUM):
                        assert value.value == QUANTUM, name
                    if cmd in (SCULL_IOCGQSET, SCULL_IOCXQSET):
                        assert value.value == QSET, name
                # Without a pointer, an ioctl neither allocates nor copies.
                run(fi, row, prepare, operation, check, reachable=by_pointer)
    finally:
        fcntl.ioctl(fd, SCULL_IOCRESET)
        os.close(fd)


@pytest.mark.parametrize("view", ["/proc/scullmem", "/proc/scullseq"])
def test_proc_views_under_every_failure_point(matrix, view):
    fill(pattern(9000, 5))
    with open(view) as f:
        expected = f.read().encode()
    buffer = ctypes.create_string_buffer(1 << 16)
    with FaultInjection() as fi:
        row = matrix(f"read {view}")

        def prepare(state):
            ctypes.memset(buffer, 0, len(buffer))

        def operation(state):
            fd, err = raw_call(libc.open, view.encode(), os.O_RDONLY)
            if fd < 0:
                return fd, err
            # Small reads, so that seq_file stops and restarts between records.
            total = 0
            while True:
                n, err = raw_call(libc.read, fd, ctypes.addressof(buffer) + total, 64)
                if n <= 0:
                    break
                total += n
            libc.close(fd)
            return (n, err) if n < 0 else (total, 0)

        def check(state, result, fired):
            n, err = result
            row.saw(outcome(n, err))
            if n >= 0:
                assert buffer.raw[:n] == expected
        run(fi, row, prepare, operation, check)
    with open(view) as f:
        assert f.read().encode() == expected


SCULLPRIV_SESSION = r"""
import fcntl, json, os, sys, termios
sys.path.insert(0, sys.argv[1])
from failnth import arm, call, disarm, fired, libc

# A session of its own with a new terminal: its first open of scullpriv creates a device.
os.setsid()
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
fail_nth = os.open("/proc/thread-self/fail-nth", os.O_RDWR)
arm(fail_nth, int(sys.argv[2]))
fd, err = call(libc.open, b"/dev/scullpriv", os.O_RDWR)
reached = fired(fail_nth)
disarm(fail_nth)
data = ""
if fd >= 0:
    # The device works, and a second open from the session finds the same one.
    os.write(fd, b"first")
    os.close(fd)
    reader = os.open("/dev/scullpriv", os.O_RDONLY)
    data = os.read(reader, 100).decode()
    os.close(reader)
print(json.dumps({"fd": fd, "err": err, "fired": reached, "data": data}))
"""


def test_scullpriv_first_open_under_every_failure_point(matrix):
    """Each failure point of a first open, each in a new session (so each open is a first)."""
    row = matrix("scullpriv first open (new tty)")
    with FaultInjection():
        for n in range(1, 1000):
            out = subprocess.run([sys.executable, "-c", SCULLPRIV_SESSION, TESTS, str(n)],
                                 check=True, capture_output=True, text=True).stdout
            run_ = json.loads(out)
            row.saw(outcome(run_["fd"], run_["err"]))
            if run_["fd"] >= 0:
                assert run_["data"] == "first", run_
            if not run_["fired"]:
                break
    assert run_["fd"] >= 0 and not run_["fired"]
    row.done(n - 1)


# scullpipe.

def drain_pipe(fd):
    try:
        while True:
            os.read(fd, 1 << 16)
    except BlockingIOError:
        pass


def pipe_holds(fd):
    return bool(select.select([fd], [], [], 0)[0])


def pipe_files_and_buffer(n):
    """scullpipe `n`'s open files and buffer bytes, from /proc/scullpipe."""
    with open("/proc/scullpipe") as f:
        line = f.read().splitlines()[n]
    fields = dict(field.split("=") for field in line.split(": ", 1)[1].split())
    return int(fields["files"]), int(fields["buffer"])


def test_pipe_first_open_under_every_failure_point(matrix):
    """The first open of a pipe allocates its buffer: from the Nth of scull's allocations on,
    every one fails. A failed open must be ENOMEM and leave the pipe as it was, with no file
    and no buffer; a successful one, a working pipe whose buffer goes with its close."""
    path, n = "/dev/scullpipe3", 3
    buffer = ctypes.create_string_buffer(100)
    with FaultInjection(module="scull", exhaust=True) as fi:
        row = matrix("scullpipe first open")

        def prepare(state):
            assert pipe_files_and_buffer(n) == (0, 0)

        def first_open(state):
            return raw_call(libc.open, path.encode(), os.O_RDWR | os.O_NONBLOCK)

        def check(state, result, fired):
            fd, err = result
            row.saw(outcome(fd, err))
            if fd >= 0:
                try:
                    assert pipe_files_and_buffer(n) == (1, 4000)
                    assert os.write(fd, b"x" * 100) == 100
                    assert os.readv(fd, [buffer]) == 100
                finally:
                    os.close(fd)
            assert pipe_files_and_buffer(n) == (0, 0)
        run(fi, row, prepare, first_open, check)
        assert row.outcomes["ENOMEM"] > 0, f"no first open failed with ENOMEM: {row.outcomes}"


def test_pipe_operations_under_every_failure_point(matrix):
    fd = os.open(PIPE, os.O_RDWR | os.O_NONBLOCK)
    buffer = ctypes.create_string_buffer(4000)
    data = pattern(100, 6)
    try:
        with FaultInjection() as fi:
            row = matrix("scullpipe write")

            def prepare_write(state):
                drain_pipe(fd)
                ctypes.memmove(buffer, data, len(data))

            def write(state):
                return raw_call(libc.write, fd, buffer, len(data))

            def check_write(state, result, fired):
                n, err = result
                row.saw(outcome(n, err))
                if n < 0:
                    assert not pipe_holds(fd)
                else:
                    assert n == len(data) and os.read(fd, 4000) == data
            run(fi, row, prepare_write, write, check_write)

            row = matrix("scullpipe read")

            def prepare_read(state):
                drain_pipe(fd)
                assert os.write(fd, data) == len(data)
                ctypes.memset(buffer, 0, len(buffer))

            def read(state):
                return raw_call(libc.read, fd, buffer, 4000)

            def check_read(state, result, fired):
                n, err = result
                row.saw(outcome(n, err))
                if n < 0:
                    # Nothing was taken out of the pipe.
                    assert os.read(fd, 4000) == data
                else:
                    assert buffer.raw[:n] == data
                    assert not pipe_holds(fd)
            run(fi, row, prepare_read, read, check_read)

            row = matrix("scullpipe fasync on")

            def prepare_fasync(state):
                state["fd"] = os.open(PIPE, os.O_RDONLY | os.O_NONBLOCK)
                # Unarmed: F_SETOWN allocates the file's owner record itself.
                fcntl.fcntl(state["fd"], fcntl.F_SETOWN, os.getpid())

            def fasync_on(state):
                return raw_call(libc.fcntl, state["fd"], fcntl.F_SETFL,
                                os.O_NONBLOCK | os.O_ASYNC)

            def check_fasync(state, result, fired):
                n, err = result
                row.saw(outcome(n, err))
                # The flag is on exactly when the call succeeded, and then the file is on
                # the pipe's queue: new data sends SIGIO (blocked, so it stays pending).
                on = bool(fcntl.fcntl(state["fd"], fcntl.F_GETFL) & os.O_ASYNC)
                assert on == (n == 0), (n, err)
                assert os.write(fd, b"x") == 1
                drain_pipe(fd)
                sent = signal.sigtimedwait([signal.SIGIO], 0) is not None
                # Closing takes the file off the queue whatever happened.
                os.close(state["fd"])
                assert sent == on, f"F_SETFL returned {n}, SIGIO {'' if sent else 'not '}sent"
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGIO])
            try:
                run(fi, row, prepare_fasync, fasync_on, check_fasync)
            finally:
                # Unblocked while pending, SIGIO's default action would end the test.
                while signal.sigtimedwait([signal.SIGIO], 0) is not None:
                    pass
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            assert row.outcomes["ENOMEM"] > 0, dict(row.outcomes)
    finally:
        drain_pipe(fd)
        os.close(fd)


# /dev/complete.

def passes_at_once(fd_flags=os.O_RDONLY):
    """True when a read on a new file returns without sleeping: a completion was banked.
    A reader that sleeps instead is woken before this returns False."""
    fd = os.open(COMPLETE, fd_flags)
    done = threading.Event()
    result = []

    def reader():
        result.append(raw_call(libc.read, fd, ctypes.create_string_buffer(100), 100))
        done.set()
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    passed = None
    while passed is None:
        if done.wait(0.02):
            passed = True
        elif blocking.sleeping_in(os.getpid(), blocking.SYS_READ, fd, tid=thread.native_id):
            passed = False
            wake = os.open(COMPLETE, os.O_WRONLY)
            os.write(wake, b"x")
            os.close(wake)
    thread.join(blocking.REACH_S)
    os.close(fd)
    assert result and result[0][0] > 0, result
    return passed


def test_complete_operations_under_every_failure_point(matrix):
    buffer = ctypes.create_string_buffer(100)
    assert not passes_at_once()                 # nothing banked to start with
    with FaultInjection() as fi:
        row = matrix("complete write")

        def prepare_write(state):
            state["fd"] = os.open(COMPLETE, os.O_WRONLY)

        def write(state):
            return raw_call(libc.write, state["fd"], buffer, 1)

        def check_write(state, result, fired):
            n, err = result
            os.close(state["fd"])
            row.saw(outcome(n, err))
            # A write that succeeded banked exactly one completion; one that failed none.
            assert passes_at_once() == (n == 1)
            assert not passes_at_once()
        # As in LDD3, a write completes and ignores its data: nothing copied or allocated.
        run(fi, row, prepare_write, write, check_write, reachable=False)

        row = matrix("complete read")

        def prepare_read(state):
            wake = os.open(COMPLETE, os.O_WRONLY)
            os.write(wake, b"x")
            os.close(wake)
            state["fd"] = os.open(COMPLETE, os.O_RDONLY)

        def read(state):
            return raw_call(libc.read, state["fd"], buffer, 100)

        def check_read(state, result, fired):
            n, err = result
            os.close(state["fd"])
            row.saw(outcome(n, err))
            if n > 0:
                assert buffer.raw[:n] == f"awoken {os.getpid()} (python3)\n".encode()
            # A read that failed hands its completion back for the next reader.
            assert passes_at_once() == (n < 0)
            assert not passes_at_once()
        run(fi, row, prepare_read, read, check_read)


def opens_as(uid, path):
    """Whether user `uid` (in a forked child) can open `path` read-only now: the errno name,
    or "ok"."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            code = 0
        except OSError as err:
            code = err.errno
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return "ok" if code == 0 else errno.errorcode.get(code, str(code))


def test_opens_under_every_failure_point(matrix):
    """complete's open and the access devices' opens, with every failure point on the way
    failed, the VFS's own and the driver's. A failed open leaves the device as it was: its
    data, and for the access devices no claim on it, so that another user gets in once the
    test's files are closed. A write-only open that succeeds trims, as always."""
    data = pattern(3000, 7)
    nobody = 65534
    with FaultInjection() as fi:
        for path, flags in [("/dev/scullsingle", os.O_RDONLY), ("/dev/scullsingle", os.O_WRONLY),
                            ("/dev/sculluid", os.O_RDWR), ("/dev/scullwuid", os.O_WRONLY)]:
            row = matrix(f"open {path[5:]} {'O_WRONLY' if flags == os.O_WRONLY else 'read'}")

            def prepare(state, path=path):
                if device_bytes(path) != data:
                    fill(data, path=path)

            def open_(state, path=path, flags=flags):
                return raw_call(libc.open, path.encode(), flags)

            def check(state, result, fired, path=path, flags=flags):
                fd, err = result
                row.saw(outcome(fd, err))
                if fd >= 0:
                    os.close(fd)
                    assert device_bytes(path) == (b"" if flags == os.O_WRONLY else data)
                else:
                    assert device_bytes(path) == data
                assert opens_as(nobody, path) == "ok", f"{path} still claimed"
            run(fi, row, prepare, open_, check)
            trim(path)

        row = matrix("open complete")

        def open_complete(state):
            return raw_call(libc.open, COMPLETE.encode(), os.O_RDONLY)

        def check_complete(state, result, fired):
            fd, err = result
            row.saw(outcome(fd, err))
            if fd >= 0:
                os.close(fd)
            # An open neither banks a completion nor takes one.
            assert not passes_at_once()
        run(fi, row, lambda state: None, open_complete, check_complete)
        assert row.outcomes["ENOMEM"] > 0, dict(row.outcomes)


# Module init.

SYS_FINIT_MODULE = 313
SYS_DELETE_MODULE = 176


def listed(path, name):
    with open(path) as f:
        return any(line.split()[-1] == name for line in f if line.strip())


@contextlib.contextmanager
def modules_unloaded():
    """Both modules out for the test's own loads; whatever the test left unloaded comes back
    afterwards, through the project's own scripts (so the next load is seen to work)."""
    script("misc_unload", "complete")
    script("scull_unload")
    try:
        yield
    finally:
        if not module_loaded("scull"):
            script("scull_load")
        if not module_loaded("complete"):
            script("misc_load", "complete")


def load_worked(module, result, fired):
    """Whether a load under injection worked; if it did and a failure point was still
    reached (the last run reaches none and keeps the module), the module goes out again for
    the next run."""
    if result[0] != 0:
        return False
    if fired:
        assert raw_call(libc.syscall, SYS_DELETE_MODULE, module.encode(), 0)[0] == 0
    return True


def load_with_every_init_allocation_failed(matrix, module, leftovers):
    """Loads `module` with each allocation and copy under its init failed in turn."""
    ko = os.path.join(REPO, f"{module}.ko")
    row = matrix(f"insmod {module}.ko (init)")
    with FaultInjection(only_under="do_one_initcall") as fi:
        def prepare(state):
            state["fd"] = os.open(ko, os.O_RDONLY)

        def load(state):
            return raw_call(libc.syscall, SYS_FINIT_MODULE, state["fd"], b"", 0)

        def check(state, result, fired):
            n, err = result
            os.close(state["fd"])
            row.saw(outcome(n, err))
            if load_worked(module, result, fired):
                return
            assert not module_loaded(module)
            assert not os.path.exists(f"/sys/module/{module}")
            for left in leftovers():
                raise AssertionError(f"failed load left {left} behind")
        run(fi, row, prepare, load, check)
    assert module_loaded(module)
    assert raw_call(libc.syscall, SYS_DELETE_MODULE, module.encode(), 0)[0] == 0


def scull_leftovers():
    if listed("/proc/devices", "scull"):
        yield "scull in /proc/devices"
    for view in ("/proc/scullmem", "/proc/scullseq"):
        if os.path.exists(view):
            yield view


def complete_leftovers():
    if listed("/proc/misc", "complete"):
        yield "complete in /proc/misc"


# Opens a device node as fast as it can until its stdin closes, then prints how many opens it
# tried and how many succeeded. It closes each file it gets at once: a file kept open through a
# failed init would hold insmod in D state until it is closed.
OPENER = r"""
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct pollfd in = { .fd = 0, .events = POLLIN };
	long tries = 0, opened = 0, unexpected = 0;

	printf("ready\n");
	fflush(stdout);
	for (;;) {
		for (int i = 1; i < argc; i++, tries++) {
			int fd = open(argv[i], O_RDONLY | O_NONBLOCK);
			if (fd >= 0) {
				opened++;
				close(fd);
			} else if (errno != ENXIO) {
				unexpected = errno;
			}
		}
		if (poll(&in, 1, 0) != 0)
			break;
	}
	printf("%ld %ld %ld\n", tries, opened, unexpected);
	return 0;
}
"""


def free_char_major():
    """A character major that nothing has: one of those kept for local use (234 to 254)."""
    with open("/proc/devices") as f:
        text = f.read().split("Block devices:")[0]
    taken = {int(line.split()[0]) for line in text.splitlines()[1:] if line.strip()}
    return next(major for major in range(254, 233, -1) if major not in taken)


@pytest.mark.timeout(900)
def test_no_file_opens_during_an_init_that_fails(tmp_path, matrix):
    """scull's devices refuse opens (ENXIO) until nothing in init can fail any more. A file
    opened during an init that then fails would be open on a module that never loaded, and
    the failed init would wait for it to close: insmod stuck in D state for as long as the
    file's owner keeps it. A separate process opens the first and the last device of each
    kind, without pause, through every failed load; none of its opens may succeed."""
    src = tmp_path / "opener.c"
    src.write_text(OPENER)
    opener = tmp_path / "opener"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(opener), str(src)], check=True)
    with modules_unloaded():
        opened_during_failed_loads(tmp_path, opener, matrix)


def opened_during_failed_loads(tmp_path, opener, matrix):
    """The body of test_no_file_opens_during_an_init_that_fails, with both modules out."""
    major = free_char_major()
    # scull0, scull3, scullpipe0, scullpipe3, then scullsingle, sculluid, scullwuid, scullpriv.
    nodes = []
    for minor in (0, 3, 4, 7, 8, 9, 10, 11):
        node = tmp_path / f"minor{minor}"
        os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
        nodes.append(str(node))
    ko = os.path.join(REPO, "scull.ko")
    row = matrix("insmod scull.ko (init), opened meanwhile")
    failed_loads = 0
    # An open of a number that no cdev serves yet asks for a module (char-major-M-N) and
    # waits for modprobe to run: seconds each under emulation. Without a modprobe path the
    # kernel does not ask.
    with open("/proc/sys/kernel/modprobe") as f:
        modprobe = f.read()
    # insmod on one CPU, the opener on the other: the opens run while init runs.
    cpus = os.sched_getaffinity(0)
    assert {0, 1} <= cpus, f"needs two CPUs, has {sorted(cpus)}"
    os.sched_setaffinity(0, {0})
    try:
        with open("/proc/sys/kernel/modprobe", "w") as f:
            f.write("\n")
        with FaultInjection(only_under="do_one_initcall") as fi:
            def prepare(state):
                state["fd"] = os.open(ko, os.O_RDONLY)
                state["opener"] = subprocess.Popen([str(opener), *nodes], stdin=subprocess.PIPE,
                                                   stdout=subprocess.PIPE, text=True,
                                                   preexec_fn=lambda: os.sched_setaffinity(0, {1}))
                assert state["opener"].stdout.readline() == "ready\n"

            def load(state):
                return raw_call(libc.syscall, SYS_FINIT_MODULE, state["fd"],
                                f"scull_major={major}".encode(), 0)

            def check(state, result, fired):
                nonlocal failed_loads
                n, err = result
                os.close(state["fd"])
                out, _ = state["opener"].communicate("")
                tries, opened, unexpected = map(int, out.split())
                row.saw(outcome(n, err))
                if load_worked("scull", result, fired):
                    return
                failed_loads += 1
                assert tries > 0
                assert unexpected == 0, f"an open failed with {errno.errorcode[unexpected]}"
                assert opened == 0, (f"{opened} of {tries} opens succeeded during a load that "
                                     f"failed with {errno.errorcode[err]}")
            run(fi, row, prepare, load, check)
        assert failed_loads > 0
        assert module_loaded("scull")
        assert raw_call(libc.syscall, SYS_DELETE_MODULE, b"scull", 0)[0] == 0
    finally:
        os.sched_setaffinity(0, cpus)
        with open("/proc/sys/kernel/modprobe", "w") as f:
            f.write(modprobe)


@pytest.mark.timeout(1200)
def test_module_init_under_every_failure_point(matrix):
    with modules_unloaded():
        load_with_every_init_allocation_failed(matrix, "scull", scull_leftovers)
        load_with_every_init_allocation_failed(matrix, "complete", complete_leftovers)
    fill(b"after")
    assert device_bytes() == b"after"
