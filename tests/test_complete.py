"""/dev/complete: reads sleep until writes complete them, one reader per write."""

import errno
import fcntl
import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

import blocking
import kcheck
from helpers import COMPLETE_IOC_WAKE_ALL, new_log, opened, script
from signalled import signal_sleeper

DEVICE = "/dev/complete"
# How long a woken reader may take to finish, generous for a TCG guest.
WAKE_BOUND_S = 10
# The log's rate limit (ratelimit.rs): lines per window, and the window.
RATELIMIT_BURST = 10
RATELIMIT_WINDOW_S = 5.1

READER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
first = os.read(fd, int(sys.argv[2]))
second = os.read(fd, 100)
sys.stdout.write(repr((first, second)))
"""


def start_reader(size=100):
    return subprocess.Popen([sys.executable, "-c", READER, DEVICE, str(size)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wake(times=1):
    for _ in range(times):
        with opened(DEVICE, os.O_WRONLY) as fd:
            assert os.write(fd, b"wake up\n") == 8


def reading_device(pid):
    """True when `pid` sleeps in read(2) on a file of /dev/complete."""
    call = blocking.syscall(pid) if blocking.sleeping_in(pid, blocking.SYS_READ) else None
    try:
        return call is not None and os.readlink(f"/proc/{pid}/fd/{call[1][0]}") == DEVICE
    except OSError:
        return False


def finish(proc, timeout=WAKE_BOUND_S):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return eval(out)  # the reader prints a repr of two bytes objects


def wait_until_asleep(procs):
    """Waits until every process sleeps in read(2) on the device, as /proc shows it."""
    deadline = time.monotonic() + blocking.REACH_S
    while not all(reading_device(p.pid) for p in procs):
        for p in procs:
            assert p.poll() is None, f"reader {p.pid} exited instead of sleeping"
        assert time.monotonic() < deadline, "readers never went to sleep in read"
        time.sleep(0.02)


def test_reader_sleeps_until_a_write_wakes_it(log_since):
    time.sleep(RATELIMIT_WINDOW_S)          # a fresh window of the log's rate limit
    reader = start_reader()
    wait_until_asleep([reader])
    woke_at = time.monotonic()
    wake()
    first, second = finish(reader)
    assert time.monotonic() - woke_at < WAKE_BOUND_S
    assert first.startswith(b"awoken ") and first.endswith(b")\n")
    assert second == b""
    log = new_log(log_since)
    assert f"process {reader.pid} (python3) going to sleep" in log
    assert f"awoken {reader.pid} (python3)" in log


def test_cat_prints_a_message_and_exits():
    cat = subprocess.Popen(["cat", DEVICE], stdout=subprocess.PIPE)
    wait_until_asleep([cat])
    subprocess.run(f"echo hello | dd of={DEVICE} status=none", shell=True, check=True)
    out, _ = cat.communicate(timeout=WAKE_BOUND_S)
    assert cat.returncode == 0
    assert out.startswith(b"awoken ")


def test_n_readers_need_n_writes():
    readers = [start_reader() for _ in range(3)]
    wait_until_asleep(readers)
    wake()
    deadline = time.monotonic() + WAKE_BOUND_S
    while sum(r.poll() is not None for r in readers) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The other two still sleep in read (once any woken by mistake has gone back to sleep).
    wait_until_asleep([r for r in readers if r.poll() is None])
    assert sum(r.poll() is None for r in readers) == 2
    wake(2)
    for r in readers:
        finish(r)


def test_a_small_buffer_gets_no_more_than_it_asked_for():
    reader = start_reader(size=3)
    wait_until_asleep([reader])
    wake()
    first, second = finish(reader)
    assert first == b"awo"
    assert second == b""


def test_a_write_before_any_reader_lets_the_next_reader_through():
    wake()
    first, _ = finish(start_reader())
    assert first.startswith(b"awoken")


def test_sigint_ends_a_blocked_read_promptly():
    cat = subprocess.Popen(["cat", DEVICE])
    wait_until_asleep([cat])
    sent = time.monotonic()
    cat.send_signal(signal.SIGINT)
    cat.wait(timeout=WAKE_BOUND_S)
    assert time.monotonic() - sent < WAKE_BOUND_S
    assert cat.returncode == -signal.SIGINT


def test_signal_without_restart_gives_eintr():
    """A handler without SA_RESTART sees the read fail with EINTR (ERESTARTSYS inside)."""
    result, err, handlers, _ = signal_sleeper("read", DEVICE, blocking.SYS_READ, restart=False)
    assert (result, err, handlers) == (-1, "EINTR", 1)


def test_signal_with_sa_restart_resumes_the_wait():
    """With SA_RESTART the handler runs during the sleep, the read sleeps again and completes
    with the data once a write wakes it."""
    result, err, handlers, data = signal_sleeper("read", DEVICE, blocking.SYS_READ, restart=True,
                                                 wake=wake)
    assert (err, handlers) == ("-", 1)
    assert result == len(data) and data.startswith(b"awoken ")


def test_wake_all_ioctl_wakes_every_sleeper_and_no_later_reader():
    readers = [start_reader() for _ in range(3)]
    wait_until_asleep(readers)
    with opened(DEVICE, os.O_WRONLY) as fd:
        assert fcntl.ioctl(fd, COMPLETE_IOC_WAKE_ALL) == 3
    for r in readers:
        finish(r)
    late = start_reader()
    wait_until_asleep([late])
    wake()
    finish(late)


def test_wake_all_needs_a_file_open_for_writing():
    """Waking readers is what a write does: a read-only file may not do it."""
    reader = start_reader()
    wait_until_asleep([reader])
    with opened(DEVICE, os.O_RDONLY) as fd:
        with pytest.raises(OSError) as err:
            fcntl.ioctl(fd, COMPLETE_IOC_WAKE_ALL)
        assert err.value.errno == errno.EBADF
    assert reading_device(reader.pid)
    with opened(DEVICE, os.O_RDWR) as fd:
        assert fcntl.ioctl(fd, COMPLETE_IOC_WAKE_ALL) == 1
    finish(reader)


def test_log_lines_are_rate_limited(log_since):
    """Writes are logged, but no more than 10 lines per 5 s: user space cannot flood the log."""
    time.sleep(RATELIMIT_WINDOW_S)              # a fresh window: earlier tests logged too
    for _ in range(40):
        wake()
    lines = [line for line in new_log(log_since).splitlines() if "awakening the readers" in line]
    assert len(lines) == RATELIMIT_BURST
    # The next window opens with a count of what the last one suppressed.
    time.sleep(RATELIMIT_WINDOW_S)
    wake()
    log = new_log(log_since)
    assert "30 messages suppressed" in log
    # Drain the 41 banked completions, so that later tests start with none.
    for _ in range(41):
        with opened(DEVICE, os.O_RDONLY) as reader:
            assert os.read(reader, 100).startswith(b"awoken")


POLL_IN = select.POLLIN | select.POLLRDNORM
POLL_OUT = select.POLLOUT | select.POLLWRNORM
SYS_POLL = 7


def poll_events(fd, timeout_ms=0, events=POLL_IN | POLL_OUT):
    poller = select.poll()
    poller.register(fd, events)
    return dict(poller.poll(timeout_ms)).get(fd, 0)


def test_nonblocking_read_fails_with_eagain_until_a_write_is_banked():
    with opened(DEVICE, os.O_RDONLY | os.O_NONBLOCK) as fd:
        with pytest.raises(BlockingIOError):
            os.read(fd, 100)
        assert poll_events(fd) == POLL_OUT
        wake()
        assert poll_events(fd) == POLL_IN | POLL_OUT
        assert os.read(fd, 100) == f"awoken {threading.get_native_id()} (python3)\n".encode()
        # This file's read passed: its next one is end of file, which poll reports as
        # readable; the completion was taken, so a fresh file reads nothing yet.
        assert poll_events(fd) == POLL_IN | POLL_OUT
        assert os.read(fd, 100) == b""
    with opened(DEVICE, os.O_RDONLY | os.O_NONBLOCK) as fd:
        assert poll_events(fd) == POLL_OUT
        with pytest.raises(BlockingIOError):
            os.read(fd, 100)


def test_poll_wakes_on_a_write_and_never_takes_a_sleeping_readers_wakeup():
    """A task sleeping in poll and a reader sleeping in read: a write wakes the reader, which
    passes. The poller may see that write's completion before the reader takes it, or sleep
    on until the next write; either way it reports POLLIN, and only the second write is left
    banked."""
    reader = start_reader()
    try:
        wait_until_asleep([reader])
        with opened(DEVICE, os.O_RDONLY) as fd:
            result = []
            # POLLIN alone: POLLOUT is always ready, and would end the wait at once.
            poller = threading.Thread(
                target=lambda: result.append(poll_events(fd, 60000, events=POLL_IN)))
            poller.start()
            try:
                blocking.wait_until_sleeping(os.getpid(), SYS_POLL, tid=poller.native_id)
                wake()
                first, _ = finish(reader)
                assert first.startswith(b"awoken ")
                wake()
                poller.join(WAKE_BOUND_S)
                assert result == [POLL_IN]
            finally:
                if poller.is_alive():
                    wake()
                    poller.join(WAKE_BOUND_S)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    with opened(DEVICE, os.O_RDONLY | os.O_NONBLOCK) as fd:
        assert os.read(fd, 100).startswith(b"awoken ")
    with opened(DEVICE, os.O_RDONLY | os.O_NONBLOCK) as fd:
        with pytest.raises(BlockingIOError):
            os.read(fd, 100)


def test_unknown_ioctl_is_enotty():
    with opened(DEVICE, os.O_RDONLY) as fd:
        with pytest.raises(OSError) as err:
            fcntl.ioctl(fd, (ord("k") << 8) | 0x41)
        assert err.value.errno == 25  # ENOTTY


def test_rmmod_fails_while_open_and_succeeds_after_close():
    with opened(DEVICE, os.O_RDONLY):
        busy = subprocess.run(["rmmod", "complete"], capture_output=True, text=True)
        assert busy.returncode != 0 and "in use" in busy.stderr
    script("misc_unload", "complete")
    assert not os.path.exists(DEVICE)
    script("misc_load", "complete")
    assert os.path.exists(DEVICE)


CHURN_READER = r"""
import os, sys
for _ in range(int(sys.argv[2])):
    fd = os.open(sys.argv[1], os.O_RDONLY)
    assert os.read(fd, 100).startswith(b"awoken")
    assert os.read(fd, 100) == b""
    os.close(fd)
"""


def test_many_readers_and_writers_lose_no_wakeup(log_since):
    readers_n, reads_each, writers_n = 6, 15, 3
    readers = [subprocess.Popen([sys.executable, "-c", CHURN_READER, DEVICE, str(reads_each)])
               for _ in range(readers_n)]
    total = readers_n * reads_each
    writer_code = (f"import os\nfor _ in range({total // writers_n}):\n"
                   f"    fd = os.open('{DEVICE}', os.O_WRONLY); os.write(fd, b'x'); os.close(fd)\n")
    writers = [subprocess.Popen([sys.executable, "-c", writer_code]) for _ in range(writers_n)]
    for p in writers + readers:
        assert p.wait(timeout=120) == 0
    # Every write was consumed: the next reader sleeps.
    late = start_reader()
    wait_until_asleep([late])
    wake()
    finish(late)
    assert kcheck.scan_log(new_log(log_since)) == []
