"""scullpipe: blocking FIFO reads and writes, O_NONBLOCK, poll/select/epoll, SIGIO, signals."""

import contextlib
import ctypes
import errno
import fcntl
import os
import select
import signal
import stat
import subprocess
import threading

import pytest

import blocking
from helpers import (PIPE_BUFFER, QUANTUM, SCULL_IOCQQUANTUM, SCULL_P_IOCQSIZE, SCULL_P_IOCTSIZE,
                     dev, libc, opened)
from signalled import signal_sleeper

PIPE = "/dev/scullpipe0"
BUFFER = PIPE_BUFFER
PIPES = 4           # scull_p_nr_devs's default
# What glibc 2.36's poll(), select() and epoll_wait() call on x86_64.
SYS_POLL, SYS_PSELECT6, SYS_EPOLL_WAIT = 7, 270, 232


def pipe_dev(n):
    return f"/dev/scullpipe{n}"


def open_pipe(flags=os.O_RDWR, n=0):
    return os.open(pipe_dev(n), flags)


def pipe_opened(flags=os.O_RDWR, n=0):
    """scullpipe `n` opened with `flags` for the body of a `with` statement."""
    return opened(pipe_dev(n), flags)


def drained(n=0):
    """Everything scullpipe `n` holds, read without blocking."""
    data = b""
    with pipe_opened(os.O_RDONLY | os.O_NONBLOCK, n) as fd:
        try:
            while True:
                data += os.read(fd, 1 << 16)
        except BlockingIOError:
            return data


@pytest.fixture(autouse=True)
def empty_pipes():
    """Every test starts with empty pipes."""
    for n in range(PIPES):
        drained(n)
    yield


def pipe_state(n=0):
    """scullpipe `n`'s line of /proc/scullpipe: its open files and the buffer it holds."""
    with open("/proc/scullpipe") as f:
        lines = f.read().splitlines()
    assert len(lines) == PIPES, lines
    name, _, fields = lines[n].partition(": ")
    assert name == f"scullpipe{n}", lines
    return dict((key, int(value)) for key, value in (f.split("=") for f in fields.split()))


def test_data_goes_with_the_last_close_and_never_with_an_open():
    """fifo(7): a new file never empties the pipe (LDD3's open does); once the last file
    closes, the buffer is freed with what was left in it."""
    assert pipe_state() == {"files": 0, "buffer": 0}
    with pipe_opened(os.O_WRONLY | os.O_NONBLOCK) as writer:
        assert pipe_state() == {"files": 1, "buffer": BUFFER}
        assert os.write(writer, b"abc") == 3
        with pipe_opened(os.O_RDONLY | os.O_NONBLOCK) as reader:
            assert os.read(reader, 100) == b"abc"
            assert os.write(writer, b"left behind") == 11
            with pipe_opened(os.O_RDONLY | os.O_NONBLOCK) as late:
                assert pipe_state() == {"files": 3, "buffer": BUFFER}
                assert os.read(late, 4) == b"left"
    assert pipe_state() == {"files": 0, "buffer": 0}
    assert drained() == b""


def test_a_new_size_applies_from_the_pipes_next_first_open():
    with pipe_opened(os.O_RDWR | os.O_NONBLOCK) as fd:
        try:
            fcntl.ioctl(fd, SCULL_P_IOCTSIZE, 100)
            # Still open: the pipe keeps the buffer it has.
            assert fill(fd) == PIPE_BUFFER
            with pipe_opened(os.O_RDWR | os.O_NONBLOCK, n=1) as other:
                assert pipe_state(1) == {"files": 1, "buffer": 100}
                assert fill(other) == 100
        finally:
            fcntl.ioctl(fd, SCULL_P_IOCTSIZE, PIPE_BUFFER)
    with pipe_opened(os.O_RDWR | os.O_NONBLOCK) as fd:
        assert fill(fd) == PIPE_BUFFER


def test_a_pipe_answers_the_scull_ioctls():
    """As in LDD3, whose scullpipe uses scull_ioctl."""
    with pipe_opened(os.O_RDONLY) as fd:
        assert fcntl.ioctl(fd, SCULL_IOCQQUANTUM) == QUANTUM
        assert fcntl.ioctl(fd, SCULL_P_IOCQSIZE) == PIPE_BUFFER
        with pytest.raises(OSError) as err:
            fcntl.ioctl(fd, (ord("k") << 8) | 0x20)
        assert err.value.errno == errno.ENOTTY


def in_thread(target, *args):
    """Runs `target` in a thread; returns (thread, result list, error list)."""
    result, errors = [], []

    def run():
        try:
            result.append(target(*args))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result, errors


def fill(fd):
    """Writes without blocking until the pipe is full; returns how much went in."""
    total = 0
    with pytest.raises(BlockingIOError):
        while True:
            total += os.write(fd, b"f" * 1000)
    return total


def test_nodes_follow_the_scull_devices_on_the_same_major():
    major = os.major(os.stat(dev(0)).st_rdev)
    names = [pipe_dev(n) for n in range(PIPES)] + [
        f"/dev/scull{name}" for name in ("single", "uid", "wuid", "priv")]
    for minor, path in enumerate(names, start=4):
        st = os.stat(path)
        assert stat.S_ISCHR(st.st_mode)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor)
    assert os.readlink("/dev/scull") == "scull0"
    assert os.readlink("/dev/scullpipe") == "scullpipe0"


def test_read_sleeps_while_empty_and_a_write_wakes_it():
    reader_fd, writer_fd = open_pipe(os.O_RDONLY), open_pipe(os.O_WRONLY)
    try:
        thread, result, errors = in_thread(os.read, reader_fd, 100)
        blocking.wait_until_sleeping(os.getpid(), blocking.SYS_READ, fd=reader_fd,
                                     tid=thread.native_id)
        assert os.write(writer_fd, b"hello") == 5
        thread.join(10)
        assert not thread.is_alive() and not errors
        assert result == [b"hello"]
    finally:
        os.close(reader_fd)
        os.close(writer_fd)


def test_write_sleeps_while_full_and_a_read_wakes_it():
    fd = open_pipe(os.O_RDWR | os.O_NONBLOCK)
    writer_fd = open_pipe(os.O_WRONLY)
    try:
        assert fill(fd) == BUFFER
        thread, result, errors = in_thread(os.write, writer_fd, b"w" * 10)
        blocking.wait_until_sleeping(os.getpid(), blocking.SYS_WRITE, fd=writer_fd,
                                     tid=thread.native_id)
        assert os.read(fd, 300) == b"f" * 300
        thread.join(10)
        assert not thread.is_alive() and not errors
        assert result == [10]
        data = os.read(fd, 2 * BUFFER)
        assert data == b"f" * (BUFFER - 300) + b"w" * 10
    finally:
        os.close(fd)
        os.close(writer_fd)


def test_nonblocking_gets_eagain_both_ways():
    with pipe_opened(os.O_RDWR | os.O_NONBLOCK) as fd:
        with pytest.raises(BlockingIOError):
            os.read(fd, 10)
        fill(fd)
        with pytest.raises(BlockingIOError):
            os.write(fd, b"x")


def test_data_order_is_kept_across_the_ring_wrap():
    with pipe_opened(os.O_RDWR | os.O_NONBLOCK) as fd:
        sent, received = bytearray(), bytearray()
        for size in (1500, 2999, 3999, 4000, 1, 3333):
            chunk = os.urandom(size)
            assert os.write(fd, chunk) == size
            sent += chunk
            received += os.read(fd, 10000)
        assert received == sent


def test_zero_length_calls_and_bad_buffers():
    with pipe_opened(os.O_RDWR | os.O_NONBLOCK) as fd:
        assert os.read(fd, 0) == b""
        assert os.write(fd, b"") == 0
        assert libc.write(fd, ctypes.c_void_p(16), 10) == -1
        assert ctypes.get_errno() == errno.EFAULT
        os.write(fd, b"data")
        assert libc.read(fd, ctypes.c_void_p(16), 10) == -1
        assert ctypes.get_errno() == errno.EFAULT
        assert os.read(fd, 10) == b"data"


def test_not_seekable():
    with pipe_opened() as fd:
        for call in (lambda: os.lseek(fd, 0, os.SEEK_SET), lambda: os.pread(fd, 1, 0),
                     lambda: os.pwrite(fd, b"x", 0)):
            with pytest.raises(OSError) as err:
                call()
            assert err.value.errno == errno.ESPIPE


# poll and epoll report only the events asked for.
POLL_ALL = select.POLLIN | select.POLLRDNORM | select.POLLOUT | select.POLLWRNORM
EPOLL_ALL = select.EPOLLIN | select.EPOLLRDNORM | select.EPOLLOUT | select.EPOLLWRNORM


def poll_events(fd):
    poller = select.poll()
    poller.register(fd, POLL_ALL)
    return dict(poller.poll(0)).get(fd, 0)


def select_ready(fd):
    readable, writable, _ = select.select([fd], [fd], [], 0)
    return bool(readable), bool(writable)


def epoll_events(fd):
    ep = select.epoll()
    try:
        ep.register(fd, EPOLL_ALL)
        return dict(ep.poll(0)).get(fd, 0)
    finally:
        ep.close()


def test_poll_select_and_epoll_in_every_state():
    with pipe_opened(os.O_RDWR | os.O_NONBLOCK) as fd:
        # Empty: writable only.
        assert poll_events(fd) == select.POLLOUT | select.POLLWRNORM
        assert select_ready(fd) == (False, True)
        assert epoll_events(fd) == select.EPOLLOUT | select.EPOLLWRNORM
        # Some data: both ways.
        os.write(fd, b"abc")
        both = select.POLLIN | select.POLLRDNORM | select.POLLOUT | select.POLLWRNORM
        assert poll_events(fd) == both
        assert select_ready(fd) == (True, True)
        # Full: readable only.
        fill(fd)
        assert poll_events(fd) == select.POLLIN | select.POLLRDNORM
        assert select_ready(fd) == (True, False)
        assert epoll_events(fd) == select.EPOLLIN | select.EPOLLRDNORM


@pytest.mark.parametrize("waiter", ["poll", "select", "epoll"])
def test_waiting_for_input_wakes_on_a_write(waiter):
    fd = open_pipe(os.O_RDONLY | os.O_NONBLOCK)
    writer_fd = open_pipe(os.O_WRONLY)

    def wait():
        if waiter == "poll":
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return poller.poll(20000)
        if waiter == "select":
            return select.select([fd], [], [], 20)[0]
        ep = select.epoll()
        try:
            ep.register(fd, select.EPOLLIN)
            return ep.poll(20)
        finally:
            ep.close()
    try:
        thread, result, errors = in_thread(wait)
        nr = {"poll": SYS_POLL, "select": SYS_PSELECT6, "epoll": SYS_EPOLL_WAIT}[waiter]
        blocking.wait_until_sleeping(os.getpid(), nr, tid=thread.native_id)
        os.write(writer_fd, b"!")
        thread.join(10)
        assert not thread.is_alive() and not errors and result[0]
    finally:
        os.close(fd)
        os.close(writer_fd)


@contextlib.contextmanager
def signals_blocked(*signums):
    """Blocks `signums`, so that they stay pending where `take_pending` finds them; a handler
    records any that reaches another thread. Drops those still pending on the way out."""
    strays = []
    old_handlers = {signum: signal.signal(signum, lambda signum, _: strays.append(signum))
                    for signum in signums}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        yield strays
    finally:
        take_pending(*signums)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for signum, handler in old_handlers.items():
            signal.signal(signum, handler)


def take_pending(*signums):
    """Dequeues the pending (blocked) signals among `signums`; returns their numbers in order."""
    taken = []
    while (info := signal.sigtimedwait(signums, 0)) is not None:
        taken.append(info.si_signo)
    return taken


def set_async(fd, signum=0):
    """Asks for a signal (SIGIO, or `signum` with its own siginfo) to this process on input."""
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETSIG, signum)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)


# kill_fasync runs inside write(): by the time a write returns, its signals are pending.

def test_fasync_sends_sigio_to_the_owner_on_new_data():
    fd = open_pipe(os.O_RDONLY | os.O_NONBLOCK)
    writer_fd = open_pipe(os.O_WRONLY)
    try:
        with signals_blocked(signal.SIGIO) as strays:
            set_async(fd)
            assert take_pending(signal.SIGIO) == []
            os.write(writer_fd, b"ping")
            assert take_pending(signal.SIGIO) == [signal.SIGIO]
            # Turned off, nothing more arrives.
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_ASYNC)
            os.write(writer_fd, b"pong")
            assert take_pending(signal.SIGIO) == []
        assert strays == []
    finally:
        os.close(fd)
        os.close(writer_fd)


def test_a_file_closed_with_fasync_on_leaves_the_queue():
    """Closing with O_ASYNC still set must take the file off the queue. A file left on it
    would be signalled for through freed memory (KASAN reports the use after free) to an
    owner that closed it: each file here asks for its own real-time signal (F_SETSIG; those
    are queued one per send, never merged), and a write must send exactly the open file's."""
    closed_sig, open_sig = signal.SIGRTMIN + 1, signal.SIGRTMIN + 2
    watched = (signal.SIGIO, closed_sig, open_sig)
    with pipe_opened(os.O_WRONLY) as writer_fd:
        with signals_blocked(*watched) as strays:
            for _ in range(3):
                fd = open_pipe(os.O_RDONLY | os.O_NONBLOCK)
                set_async(fd, closed_sig)
                os.close(fd)
            os.write(writer_fd, b"after close")
            assert take_pending(*watched) == []
            # A file that asks later gets its signal, once a write.
            fd = open_pipe(os.O_RDONLY | os.O_NONBLOCK)
            set_async(fd, open_sig)
            os.write(writer_fd, b"one")
            assert take_pending(*watched) == [open_sig]
            # And it too leaves the queue when closed with O_ASYNC on.
            os.close(fd)
            os.write(writer_fd, b"two")
            assert take_pending(*watched) == []
        assert strays == []


def test_signals_end_sleeps():
    """Default action: a blocked reader dies at once."""
    cat = subprocess.Popen(["cat", PIPE])
    blocking.wait_until_sleeping(cat.pid, blocking.SYS_READ, fd=3)
    assert os.readlink(f"/proc/{cat.pid}/fd/3") == PIPE
    cat.send_signal(signal.SIGINT)
    assert cat.wait(timeout=10) == -signal.SIGINT


def test_signal_without_restart_gives_eintr():
    """A handler without SA_RESTART: the blocked read fails with EINTR (ERESTARTSYS inside)."""
    result, err, handlers, _ = signal_sleeper("read", PIPE, blocking.SYS_READ, restart=False)
    assert (result, err, handlers) == (-1, "EINTR", 1)


def test_signal_with_sa_restart_resumes_the_read():
    """With SA_RESTART the handler runs during the sleep, the read sleeps again, and a write
    completes it with the data."""
    def feed():
        with pipe_opened(os.O_WRONLY | os.O_NONBLOCK) as fd:
            assert os.write(fd, b"resumed") == 7
    result, err, handlers, data = signal_sleeper("read", PIPE, blocking.SYS_READ, restart=True,
                                                 wake=feed)
    assert (result, err, handlers, data) == (7, "-", 1, b"resumed")


@pytest.mark.parametrize("restart", [False, True], ids=["interrupt", "sa_restart"])
def test_a_signal_ends_or_restarts_a_write_sleeping_on_a_full_pipe(restart):
    """Without SA_RESTART the sleeping write fails with EINTR and wrote nothing; with it, the
    write sleeps again and, once the pipe is drained, writes everything. A file held open
    here keeps what the writer left once it exits (the last close would free it)."""
    filled = []

    def take_what_filled_it():
        # Exactly the full pipe's bytes: the restarted write may refill it at once.
        with pipe_opened(os.O_RDONLY | os.O_NONBLOCK) as fd:
            data = b""
            while len(data) < BUFFER:
                data += os.read(fd, BUFFER - len(data))
        filled.append(data)
    with pipe_opened(os.O_RDONLY | os.O_NONBLOCK):
        result, err, handlers, _ = signal_sleeper(
            "write", PIPE, blocking.SYS_WRITE, restart=restart, wake=take_what_filled_it)
        if restart:
            assert (result, err, handlers) == (100, "-", 1)
            assert filled[0] == b"f" * BUFFER, "the pipe held only what filled it"
            assert drained() == b"w" * 100
        else:
            assert (result, err, handlers) == (-1, "EINTR", 1)
            assert set(drained()) == {ord("f")}, "the interrupted write put nothing in"


def test_one_writer_one_reader_keep_every_byte_in_order():
    data = os.urandom(1 << 20)
    writer_fd, reader_fd = open_pipe(os.O_WRONLY, 1), open_pipe(os.O_RDONLY, 1)

    def write_all():
        view = memoryview(data)
        while view:
            view = view[os.write(writer_fd, view[:7777]):]
    try:
        thread, _, errors = in_thread(write_all)
        received = bytearray()
        while len(received) < len(data):
            received += os.read(reader_fd, 3001)
        thread.join(10)
        assert not errors
        assert received == data
    finally:
        os.close(writer_fd)
        os.close(reader_fd)


def test_several_readers_and_writers_lose_nothing():
    writers, readers, per_writer = 3, 3, 200_000
    counts = [[0] * 256 for _ in range(readers)]
    done = threading.Event()
    errors = []

    def write(value):
        fd = open_pipe(os.O_WRONLY, 2)
        try:
            chunk = bytes([value]) * 1000
            left = per_writer
            while left:
                left -= os.write(fd, chunk[:left])
        except OSError as err:
            errors.append(err)
        finally:
            os.close(fd)

    def read(index):
        fd = open_pipe(os.O_RDONLY | os.O_NONBLOCK, 2)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while True:
                if not poller.poll(100):
                    if done.is_set():
                        return
                    continue
                try:
                    for byte in os.read(fd, 2500):
                        counts[index][byte] += 1
                except BlockingIOError:
                    pass          # another reader took it first
        except OSError as err:
            errors.append(err)
        finally:
            os.close(fd)

    threads = [threading.Thread(target=write, args=(ord("a") + n,)) for n in range(writers)]
    threads += [threading.Thread(target=read, args=(n,)) for n in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads[:writers]:
        thread.join(120)
    done.set()
    for thread in threads[writers:]:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    for n in range(writers):
        assert sum(count[ord("a") + n] for count in counts) == per_writer
    assert sum(map(sum, counts)) == writers * per_writer
