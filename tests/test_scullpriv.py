"""scullpriv's lifetime: a device per terminal and session, never handed to a later session,
created only by a writer, and bounded per user."""

import errno
import fcntl
import grp
import os
import socket
import subprocess
import sys
import termios

import pytest

from helpers import HeldOpen, memory_view, opened

PRIV = "/dev/scullpriv"
NOBODY = 65534
MAX_PER_USER = 16                   # scull_access.rs
MAX_TERMINALS = 256


class Session(HeldOpen):
    """A forked process in a session of its own, whose controlling terminal is the pty slave
    `slave` (a new pty if None). It opens scullpriv with `flags`, writes `write` if given,
    reads what the device holds, reports, and keeps the file open until told to go."""

    def __init__(self, flags, write=None, uid=None, slave=None):
        def use_device():
            os.setsid()
            if slave is None:
                _, tty = os.openpty()
            else:
                tty = os.open(slave, os.O_RDWR)
            fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
            if uid is not None:
                # The nodes are group staff (or wheel), mode 664: join it to write.
                os.setgroups([grp.getgrgid(os.stat(PRIV).st_gid).gr_gid])
                os.setgid(uid)
                os.setuid(uid)
            fd = os.open(PRIV, flags)
            if write is not None:
                os.write(fd, write)
            reader = os.open(PRIV, os.O_RDONLY)
            status = "ok " + os.read(reader, 100).decode()
            os.close(reader)
            return status
        super().__init__(use_device)


def test_a_write_only_open_trims_and_a_refused_o_direct_open_does_not():
    """Within one session: opening write-only empties the session's device, as for scullN;
    an O_DIRECT open is refused before it could."""
    def body():
        os.setsid()
        _, tty = os.openpty()
        fcntl.ioctl(tty, termios.TIOCSCTTY, 0)

        def contents():
            fd = os.open(PRIV, os.O_RDONLY)
            data = os.read(fd, 100)
            os.close(fd)
            return data
        fd = os.open(PRIV, os.O_WRONLY)
        os.write(fd, b"kept")
        os.close(fd)
        try:
            os.close(os.open(PRIV, os.O_WRONLY | os.O_DIRECT))
            direct = "opened"
        except OSError as err:
            direct = errno.errorcode[err.errno]
        after_direct = contents()
        os.close(os.open(PRIV, os.O_WRONLY))
        return repr((direct, after_direct, contents()))
    session = HeldOpen(body)
    try:
        assert session.status() == repr(("EINVAL", b"kept", b""))
    finally:
        session.finish()


def run(*args, **kwargs):
    session = Session(*args, **kwargs)
    status = session.status()
    session.finish()
    return status


def test_a_new_session_on_the_same_terminal_never_sees_the_last_ones_data():
    master, slave_fd = os.openpty()
    slave = os.ttyname(slave_fd)
    os.close(slave_fd)
    try:
        # The first session writes and ends; the terminal, /dev/pts/N, stays (the master is
        # open), so the next session gets the same terminal number.
        assert run(os.O_WRONLY, write=b"secret", slave=slave) == "ok secret"
        # Another user's session on the same terminal finds nothing.
        assert run(os.O_RDONLY, uid=NOBODY, slave=slave) == "ok"
        assert run(os.O_RDWR, slave=slave) == "ok"
    finally:
        os.close(master)


def session_with_pid(pid, *args, **kwargs):
    """A Session whose process, and so whose session, has number `pid`, which must be free:
    the kernel hands out the number after /proc/sys/kernel/ns_last_pid next. Another task
    may take it first, so this tries again a few times."""
    for _ in range(20):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        session = Session(*args, **kwargs)
        if session.pid == pid:
            return session
        session.finish()
    raise AssertionError(f"pid {pid} was never handed out again")


# ns_last_pid needs CONFIG_CHECKPOINT_RESTORE, which the debug kernel leaves out.
@pytest.mark.release_kernel
def test_a_reused_session_number_is_a_different_session():
    """A session ends and its number is handed out again, to a new session on the same
    terminal: it is another session, and finds nothing. A device kept by terminal and
    session *number* would show it the last one's data."""
    master, slave_fd = os.openpty()
    slave = os.ttyname(slave_fd)
    os.close(slave_fd)
    try:
        first = Session(os.O_WRONLY, write=b"secret", slave=slave)
        assert first.status() == "ok secret"
        number = first.pid                  # setsid() made the session's number its pid
        first.finish()
        second = session_with_pid(number, os.O_RDONLY, slave=slave)
        try:
            assert second.status() == "ok"
        finally:
            second.finish()
    finally:
        os.close(master)


def test_a_read_only_open_creates_no_device_and_each_user_is_bounded():
    held = [Session(os.O_WRONLY, write=b"mine", uid=NOBODY) for _ in range(MAX_PER_USER)]
    try:
        assert [s.status() for s in held] == ["ok mine"] * MAX_PER_USER
        # One more device for this user is refused; reading, which creates none, is not.
        assert run(os.O_WRONLY, uid=NOBODY) == "ENOSPC"
        assert run(os.O_RDONLY, uid=NOBODY) == "ok"
        # Other users are not held up by this one.
        assert run(os.O_WRONLY, write=b"root's") == "ok root's"
    finally:
        for session in held:
            session.finish()
    # Sessions that ended gave their devices up.
    assert run(os.O_WRONLY, write=b"again", uid=NOBODY) == "ok again"


# Sessions by the hundred: forked from a small interpreter of their own, since each fork of
# the test's own (pytest's) copies its far larger memory map, slow on the debug kernel.
# Each session writes its device and reports, then holds it until its stdin closes.
SESSIONS = r"""
import errno, fcntl, os, sys, termios
gid = os.stat("/dev/scullpriv").st_gid
children = []
for uid in map(int, sys.argv[1:]):
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            _, tty = os.openpty()
            fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
            os.setgroups([gid])
            os.setgid(uid)
            os.setuid(uid)
            fd = os.open("/dev/scullpriv", os.O_WRONLY)
            os.write(fd, b"held")
            status = "ok"
        except OSError as err:
            status = errno.errorcode[err.errno]
        os.write(1, status.encode() + b"\n")
        os.read(0, 1)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""


def test_all_users_together_hold_at_most_256_devices():
    """Sixteen users, each at its own bound, hold 256 devices: a seventeenth user, far from
    its own bound, is refused a device too (root as well), but may still read. Once one
    session ends there is room again."""
    users = range(1000, 1000 + MAX_TERMINALS // MAX_PER_USER)
    uids = [uid for uid in users for _ in range(MAX_PER_USER)]
    # All but the last, which the test ends on its own.
    many = subprocess.Popen([sys.executable, "-S", "-c", SESSIONS, *map(str, uids[:-1])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    last = None
    try:
        assert [many.stdout.readline() for _ in uids[:-1]] == ["ok\n"] * (MAX_TERMINALS - 1)
        last = Session(os.O_WRONLY, write=b"held", uid=uids[-1])
        assert last.status() == "ok held"
        assert run(os.O_WRONLY, uid=NOBODY) == "ENOSPC"
        assert run(os.O_WRONLY) == "ENOSPC"
        assert run(os.O_RDONLY, uid=NOBODY) == "ok"
        last.finish()
        last = None
        assert run(os.O_WRONLY, write=b"room", uid=NOBODY) == "ok room"
    finally:
        if last is not None:
            last.finish()
        many.stdin.close()
        assert many.wait(timeout=120) == 0


def test_a_file_that_outlives_its_session_keeps_the_device():
    """A session hands its open scullpriv file to a process outside it (SCM_RIGHTS), then
    ends. The next open of scullpriv forgets the session's device, but the file still reads
    and writes it; the device's memory goes only when that file closes."""
    run(os.O_RDONLY)                # forgets what earlier tests' sessions left
    before = memory_view()["total"]["used"]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def hand_over():
        os.setsid()
        _, tty = os.openpty()
        fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
        fd = os.open(PRIV, os.O_RDWR)
        os.write(fd, b"outlived")
        socket.send_fds(theirs, [b"fd"], [fd])
        return "ok"
    session = HeldOpen(hand_over, keep=[theirs.fileno()])
    theirs.close()
    try:
        assert session.status() == "ok"
        _, (fd,), _, _ = socket.recv_fds(ours, 2, 1)
    finally:
        session.finish()
        ours.close()
    try:
        assert [(row["alive"], row["size"]) for row in private_rows(memory_view()).values()] \
            == [(0, 8)]
        run(os.O_RDONLY)            # forgets the ended session's device
        assert private_rows(memory_view()) == {}
        assert os.pread(fd, 100, 0) == b"outlived"
        assert os.pwrite(fd, b"still ", 0) == 6
        assert os.pread(fd, 100, 0) == b"still ed"
        assert memory_view()["total"]["used"] > before
    finally:
        os.close(fd)
    assert memory_view()["total"]["used"] == before


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_RDWR])
def test_processes_of_one_session_share_its_device(flags):
    """The writer's session, then a reader in the same session (a child): it sees the data."""
    master, slave_fd = os.openpty()
    slave = os.ttyname(slave_fd)
    os.close(slave_fd)
    read_r, read_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_r)
        os.setsid()
        tty = os.open(slave, os.O_RDWR)
        fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
        fd = os.open(PRIV, os.O_WRONLY)
        os.write(fd, b"shared")
        child = os.fork()
        if child == 0:
            reader = os.open(PRIV, flags)
            os.write(read_w, os.read(reader, 100))
            os._exit(0)
        os.waitpid(child, 0)
        os._exit(0)
    os.close(read_w)
    try:
        assert os.read(read_r, 100) == b"shared"
    finally:
        os.waitpid(pid, 0)
        os.close(read_r)
        os.close(master)


def private_rows(rows):
    return {name: row for name, row in rows.items() if name.startswith("scullpriv.")}


def assert_used_is_the_sum_of_the_lines(rows):
    held = sum(row["allocated"] for name, row in rows.items() if name != "total")
    assert rows["total"]["used"] == held, rows


def test_the_memory_view_shows_every_device_that_holds_memory():
    """`used=` is the sum of the lines: scullN's, the access devices', and each device that
    scullpriv keeps, whose line stays (alive=0) as long as an ended session's memory does."""
    run(os.O_RDONLY)                # an open forgets the devices of sessions that ended
    sizes = {"scull0": 5000, "scullsingle": 3000, "sculluid": 2000, "scullwuid": 1000}
    for name, size in sizes.items():
        with opened(f"/dev/{name}", os.O_WRONLY) as fd:
            assert os.write(fd, b"d" * size) == size
    session = Session(os.O_WRONLY, write=b"p" * 4000)
    try:
        assert session.status() == "ok " + "p" * 100
        rows = memory_view()
        assert {name: rows[name]["size"] for name in sizes} == sizes
        assert [(row["alive"], row["size"]) for row in private_rows(rows).values()] == [(1, 4000)]
        assert_used_is_the_sum_of_the_lines(rows)
    finally:
        session.finish()
    # The session ended, and nobody has opened scullpriv since: its memory is still held.
    rows = memory_view()
    assert [(row["alive"], row["size"]) for row in private_rows(rows).values()] == [(0, 4000)]
    assert_used_is_the_sum_of_the_lines(rows)
    # The next open forgets it, and gives its memory back.
    used = rows["total"]["used"]
    run(os.O_RDONLY)
    rows = memory_view()
    assert private_rows(rows) == {}
    assert_used_is_the_sum_of_the_lines(rows)
    assert rows["total"]["used"] < used


def test_an_ended_sessions_memory_goes_when_a_writer_needs_it(scull_params):
    """A device whose session ended can never be opened again: when the budget is used up,
    its memory goes before any writer gets ENOSPC, without waiting for an open of scullpriv."""
    # Room for 100 quanta of 1000 bytes with their quantum set and the array's first slot.
    scull_params("scull_quantum=1000", "scull_mem_limit=124024")
    assert run(os.O_WRONLY, write=b"p" * 60_000) == "ok " + "p" * 100
    rows = memory_view()
    assert [(row["alive"], row["size"]) for row in private_rows(rows).values()] == [(0, 60_000)]
    # scull0 needs more than the budget has left: the ended session's device makes way.
    with opened("/dev/scull0", os.O_WRONLY) as fd:
        assert os.write(fd, bytes(100_000)) == 100_000
    rows = memory_view()
    assert private_rows(rows) == {}
    assert rows["scull0"]["size"] == 100_000
    assert_used_is_the_sum_of_the_lines(rows)
    # A live session's device is not garbage: it stays, and the writer gets what is left.
    os.close(os.open("/dev/scull0", os.O_WRONLY))
    session = Session(os.O_WRONLY, write=b"q" * 20_000)
    try:
        assert session.status() == "ok " + "q" * 100
        # 20 quanta, a quantum set and a slot are the session's: 80000 bytes are left, of
        # which scull1's quantum set and slot take 24024, and 55 quanta fit in the rest.
        with opened("/dev/scull1", os.O_WRONLY) as fd:
            assert os.write(fd, bytes(150_000)) == 55_000
            with pytest.raises(OSError) as refused:
                os.write(fd, b"x")
            assert refused.value.errno == errno.ENOSPC
        rows = memory_view()
        assert [(row["alive"], row["size"]) for row in private_rows(rows).values()] == \
            [(1, 20_000)]
        assert_used_is_the_sum_of_the_lines(rows)
    finally:
        session.finish()
