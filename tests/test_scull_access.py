"""LDD3's access-control devices: scullsingle, sculluid, scullwuid and scullpriv."""

import errno
import os
import pty
import signal

import pytest

import blocking
from helpers import HeldOpen, opened
from signalled import signal_sleeper

SINGLE, UID, WUID, PRIV = (f"/dev/scull{name}" for name in ("single", "uid", "wuid", "priv"))
NOBODY = 65534


class Child(HeldOpen):
    """A forked process that opens a device, says what happened ("ok" or the errno's name),
    and keeps it open until told to go (`finish`)."""

    def __init__(self, path, flags=os.O_RDONLY, uid=None, setup=None):
        def open_device():
            if setup:
                setup()
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            os.open(path, flags)
            return "ok"
        super().__init__(open_device)


def test_scullsingle_admits_one_open_file_at_a_time():
    with opened(SINGLE, os.O_WRONLY) as fd:
        with pytest.raises(OSError) as err:
            os.open(SINGLE, os.O_RDONLY)
        assert err.value.errno == errno.EBUSY
        assert os.write(fd, b"single") == 6
    with opened(SINGLE, os.O_RDONLY) as fd:
        assert os.read(fd, 100) == b"single"      # a scull device once open


def test_sculluid_keeps_other_users_out():
    fd = os.open(UID, os.O_WRONLY)                # root holds it
    try:
        os.write(fd, b"root's")
        nobody = Child(UID, uid=NOBODY)
        assert nobody.status() == "EBUSY"
        nobody.finish()
        second = os.open(UID, os.O_RDONLY)        # the same user may open it again
        assert os.read(second, 100) == b"root's"
        os.close(second)
    finally:
        os.close(fd)
    # Free again: nobody takes it; root still gets in through CAP_DAC_OVERRIDE.
    nobody = Child(UID, uid=NOBODY)
    assert nobody.status() == "ok"
    other_nobody = Child(UID, uid=NOBODY)
    assert other_nobody.status() == "ok"
    fd = os.open(UID, os.O_RDONLY)
    os.close(fd)
    nobody.finish()
    other_nobody.finish()


def test_sculluid_refuses_another_user_without_the_capability():
    nobody = Child(UID, uid=NOBODY)
    try:
        assert nobody.status() == "ok"
        daemon = Child(UID, uid=1)                # uid 1, no capabilities either
        assert daemon.status() == "EBUSY"
        daemon.finish()
    finally:
        nobody.finish()


def test_sculluid_admits_its_owner_by_effective_uid_too():
    """LDD3's check: the owner's real or effective uid. A set-user-ID program run by uid 1
    as nobody gets in beside nobody; uid 1 itself does not."""
    holder = Child(UID, uid=NOBODY)
    try:
        assert holder.status() == "ok"

        def run_as_nobody_by_uid_1():
            os.setresgid(1, NOBODY, NOBODY)
            os.setresuid(1, NOBODY, NOBODY)    # drops every capability: euid is not 0
        setuid_program = Child(UID, setup=run_as_nobody_by_uid_1)
        assert setuid_program.status() == "ok"
        setuid_program.finish()
        uid_1 = Child(UID, uid=1)
        assert uid_1.status() == "EBUSY"
        uid_1.finish()
    finally:
        holder.finish()


def test_scullwuid_makes_other_users_wait():
    with opened(WUID, os.O_WRONLY):
        quick = Child(WUID, flags=os.O_RDONLY | os.O_NONBLOCK, uid=NOBODY)
        assert quick.status() == "EAGAIN"
        quick.finish()
        patient = Child(WUID, uid=NOBODY)
        blocking.wait_until_sleeping(patient.pid, blocking.SYS_OPENAT)
        # Still sleeping in open: nothing reported yet.
        os.set_blocking(patient.report.fileno(), False)
        assert patient.report.readline() == ""
        os.set_blocking(patient.report.fileno(), True)
    assert patient.status() == "ok"               # woken by the close
    patient.finish()


def test_scullwuid_wait_ends_on_a_signal():
    with opened(WUID, os.O_WRONLY):
        waiter = Child(WUID, uid=NOBODY)
        blocking.wait_until_sleeping(waiter.pid, blocking.SYS_OPENAT)
        os.kill(waiter.pid, signal.SIGTERM)
        _, status = os.waitpid(waiter.pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        waiter.report.close()
        os.close(waiter.go)


def test_scullwuid_wait_without_sa_restart_gives_eintr():
    with opened(WUID, os.O_WRONLY):
        result, err, handlers, _ = signal_sleeper("open", WUID, blocking.SYS_OPENAT,
                                                  restart=False, uid=NOBODY)
    assert (result, err, handlers) == (-1, "EINTR", 1)


def test_scullwuid_wait_with_sa_restart_resumes_and_opens_once_free():
    held = [os.open(WUID, os.O_WRONLY)]

    def free():
        os.close(held.pop())
    try:
        result, err, handlers, _ = signal_sleeper("open", WUID, blocking.SYS_OPENAT,
                                                  restart=True, uid=NOBODY, wake=free)
    finally:
        if held:
            free()
    assert result >= 0 and (err, handlers) == ("-", 1)


def start_in_pty(code, **names):
    """Forks a child whose controlling terminal is a new pty and runs `code` (Python) in it,
    with `names` as globals; returns (pid, master)."""
    pid, master = pty.fork()
    if pid == 0:
        try:
            exec(code, {"os": os, "PRIV": PRIV, "errno": errno, **names})
        except BaseException as exc:  # noqa: BLE001 - shown in the test's output
            os.write(1, f"error: {exc!r}\n".encode())
        finally:
            os._exit(0)
    return pid, master


def pty_output(pid, master):
    """What the child wrote to its terminal (through fd 1: pytest has replaced `sys.stdout`),
    once it has exited."""
    output = b""
    while True:
        try:
            data = os.read(master, 1024)
        except OSError:
            break
        if not data:
            break
        output += data
    os.waitpid(pid, 0)
    os.close(master)
    return output.decode().replace("\r", "")


def in_pty(code):
    return pty_output(*start_in_pty(code))


# Writes TEXT, says so (and on which terminal) on `ready`, and reads back only once the parent
# says go: by then every terminal has written.
WRITE_WAIT_READ = """
try:
    fd = os.open(PRIV, os.O_WRONLY)
    os.write(fd, TEXT)
    os.close(fd)
    os.write(ready, os.ttyname(0).encode() + b"\\n")
except BaseException:
    os.write(ready, b"failed\\n")
    raise
os.read(go, 1)
fd = os.open(PRIV, os.O_RDONLY)
os.write(1, os.read(fd, 100) + b"\\n")
os.close(fd)
"""

SHARED = """
fd = os.open(PRIV, os.O_WRONLY)
os.write(fd, b"shared")
os.close(fd)
pid = os.fork()
if pid == 0:
    fd = os.open(PRIV, os.O_RDONLY)
    os.write(1, b"child read " + os.read(fd, 100) + b"\\n")
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_scullpriv_gives_each_terminal_its_own_device():
    """Two terminals at once: both write (each open write-only trims its device) before
    either reads, so one device shared by both would show the second text to both."""
    texts = [b"first terminal", b"second terminal"]
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    sessions = []
    try:
        for text in texts:
            sessions.append(start_in_pty(WRITE_WAIT_READ, TEXT=text, ready=ready_w, go=go_r))
        os.close(ready_w)
        ready_w = None
        with os.fdopen(ready_r, buffering=1) as ready:
            ready_r = None
            terminals = [ready.readline().strip() for _ in sessions]
        assert "failed" not in terminals and "" not in terminals, terminals
        assert terminals[0] != terminals[1]       # two terminals, open at the same time
        os.write(go_w, b"go")
        outputs = []
        while sessions:
            outputs.append(pty_output(*sessions.pop(0)))
    finally:
        for fd in (ready_r, ready_w, go_r, go_w):
            if fd is not None:
                os.close(fd)
        for pid, master in sessions:              # left waiting by a failure
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(master)
    assert outputs == [text.decode() + "\n" for text in texts]
    # Two processes on one terminal share its device.
    assert in_pty(SHARED) == "child read shared\n"


def test_scullpriv_needs_a_controlling_terminal():
    def detach():
        os.setsid()                               # a new session has no terminal
    orphan = Child(PRIV, setup=detach)
    assert orphan.status() == "EINVAL"
    orphan.finish()


def test_access_devices_are_scull_devices_once_open():
    for path in (SINGLE, UID, WUID):
        fd = os.open(path, os.O_WRONLY)           # trims
        try:
            assert os.write(fd, b"0123456789") == 10
            assert os.lseek(fd, 2, os.SEEK_SET) == 2
            assert os.write(fd, b"ab") == 2
        finally:
            os.close(fd)
        with opened(path, os.O_RDONLY) as fd:
            assert os.pread(fd, 100, 0) == b"01ab456789"
            assert os.lseek(fd, 0, os.SEEK_END) == 10

