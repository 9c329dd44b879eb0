"""Proof that a task sleeps inside a given system call, read from /proc, never guessed from
a delay.

A test that "waits 0.5 s and sees the process has not finished" passes whether the task sleeps
in the driver or is still starting up. These helpers look at what the kernel says instead:
the task's state (`S`, interruptible sleep), the system call it is in and its arguments
(`/proc/PID/syscall`), and where it sleeps (`/proc/PID/wchan`).
"""

import os
import time

# x86_64 system call numbers.
SYS_READ = 0
SYS_WRITE = 1
SYS_IOCTL = 16
SYS_READV = 19
SYS_WRITEV = 20
SYS_OPENAT = 257

# Generous for a TCG guest with KASAN: how long a task may take to reach its sleep.
REACH_S = 20


def _task_dir(pid, tid=None):
    return f"/proc/{pid}/task/{tid}" if tid is not None else f"/proc/{pid}"


def state(pid, tid=None):
    """The task's one-letter state (`R`, `S`, `D`, `Z`, ...); the name may hold spaces or ')'."""
    with open(_task_dir(pid, tid) + "/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def syscall(pid, tid=None):
    """(number, [args]) of the system call the task is blocked in, or None when it is
    running or in user space."""
    with open(_task_dir(pid, tid) + "/syscall") as f:
        fields = f.read().split()
    if not fields or fields[0] in ("running", "-1"):
        return None
    return int(fields[0]), [int(a, 16) for a in fields[1:7]]


def wchan(pid, tid=None):
    """The kernel function the task sleeps in ('0' or '' when it does not sleep)."""
    with open(_task_dir(pid, tid) + "/wchan") as f:
        return f.read().strip()


def sleeping_in(pid, nr, fd=None, tid=None):
    """True when the task sleeps interruptibly in system call `nr` (on `fd`, if given)."""
    try:
        if state(pid, tid) != "S":
            return False
        call = syscall(pid, tid)
        # The state may change between the reads: check it again after.
        if call is None or state(pid, tid) != "S":
            return False
    except (FileNotFoundError, ProcessLookupError):
        return False
    number, args = call
    if number != nr:
        return False
    return fd is None or args[0] == fd


def wait_until_sleeping(pid, nr, fd=None, tid=None, timeout=REACH_S, what=None, returned=None):
    """Waits until the task sleeps in system call `nr`; fails the test if it never does.

    `what` names the call in messages. `returned`, for a child not yet reaped (whose /proc
    entry stays while it is a zombie), says whether the call returned instead of sleeping, as
    a description of what it printed, or None while it runs.

    Returns the task's wchan, for messages.
    """
    what = what or f"task {pid}/{tid}"
    deadline = time.monotonic() + timeout
    while not sleeping_in(pid, nr, fd, tid):
        if returned is not None:
            output = returned()
            if output is not None:
                raise AssertionError(f"{what}: the call returned instead of sleeping: {output}")
        if not os.path.exists(_task_dir(pid, tid)):
            raise AssertionError(f"{what} exited instead of sleeping in syscall {nr}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} never slept in syscall {nr}: state {state(pid, tid)}, "
                f"syscall {syscall(pid, tid)}, wchan {wchan(pid, tid)}")
        time.sleep(0.02)
    return wchan(pid, tid)


def assert_still_sleeping(pid, nr, fd=None, tid=None):
    """Fails unless the task still sleeps in system call `nr`."""
    assert sleeping_in(pid, nr, fd, tid), (
        f"task {pid}/{tid} no longer sleeps in syscall {nr}: state {state(pid, tid)}, "
        f"syscall {syscall(pid, tid)}")
