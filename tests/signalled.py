"""A signal that arrives while a task sleeps in a driver, with and without SA_RESTART.

Without SA_RESTART the call must fail with EINTR (the driver returns ERESTARTSYS); with it,
the kernel restarts the call, which sleeps again and completes once the driver is woken.

The sleeper calls libc's `read` or `open` through ctypes: Python's `os.read` and `os.open`
retry after EINTR by themselves (PEP 475), which would hide the difference. That the handler
ran during the sleep, and not after the call returned, is seen from outside: CPython's C-level
handler writes the signal number to the wakeup fd (`signal.set_wakeup_fd`) as soon as the
signal is delivered, while the Python-level handler only runs once the call has returned.
"""

import os
import select
import signal
import subprocess
import sys

import blocking

SLEEPER = r"""
import ctypes, errno, fcntl, os, signal, sys
op, path, mode, wakeup_fd, uid = sys.argv[1:6]
libc = ctypes.CDLL(None, use_errno=True)
caught = []
# CPython installs the handler with sigaction and no SA_RESTART; siginterrupt(sig, False)
# sets SA_RESTART on it.
signal.signal(signal.SIGUSR1, lambda *_: caught.append(1))
if mode == "restart":
    signal.siginterrupt(signal.SIGUSR1, False)
os.set_blocking(int(wakeup_fd), False)
signal.set_wakeup_fd(int(wakeup_fd))
if int(uid) >= 0:
    os.setgroups([])
    os.setgid(int(uid))
    os.setuid(int(uid))
data = b""
if op == "read":
    fd = os.open(path, os.O_RDONLY)
    buf = ctypes.create_string_buffer(100)
    ctypes.set_errno(0)
    result = libc.read(fd, buf, ctypes.c_size_t(100))
    data = buf.raw[:max(result, 0)]
elif op == "write":
    # Fills the pipe without blocking, then sleeps writing 100 bytes more.
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        while True:
            os.write(fd, b"f" * 4096)
    except BlockingIOError:
        pass
    fcntl.fcntl(fd, fcntl.F_SETFL, 0)
    ctypes.set_errno(0)
    result = libc.write(fd, b"w" * 100, ctypes.c_size_t(100))
else:
    ctypes.set_errno(0)
    result = libc.open(path.encode(), os.O_RDONLY)
err = ctypes.get_errno()
def handlers_run():  # a Python call: pending Python-level handlers run first
    return len(caught)
print(result, errno.errorcode.get(err, err) if result < 0 else "-", handlers_run(),
      data.hex() or "-", flush=True)
"""

REACH_S = blocking.REACH_S


def _wait_sleeping(child, nr, what):
    def returned():
        return None if child.poll() is None else repr(child.stdout.read())
    blocking.wait_until_sleeping(child.pid, nr, what=what, returned=returned)


def signal_sleeper(op, path, nr, restart, wake=None, uid=None):
    """Starts a process that calls `op` ('read', 'open', or 'write' into a pipe it filled) on
    `path` through libc, waits until it sleeps in system call `nr`, and sends it SIGUSR1
    (with SA_RESTART if `restart`).

    Fails unless the handler ran while the call slept. With `restart`, the call must then sleep
    in `nr` again, and `wake()` is called to let it complete.

    Returns (result, errno name or '-', Python handlers run, data read).
    """
    wakeup_r, wakeup_w = os.pipe()
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", SLEEPER, op, path, "restart" if restart else "interrupt",
             str(wakeup_w), str(-1 if uid is None else uid)],
            pass_fds=[wakeup_w], stdout=subprocess.PIPE, text=True)
    finally:
        os.close(wakeup_w)
    try:
        _wait_sleeping(child, nr, f"{op} {path}")
        child.send_signal(signal.SIGUSR1)
        ready, _, _ = select.select([wakeup_r], [], [], REACH_S)
        assert ready, "the SIGUSR1 handler never ran"
        assert os.read(wakeup_r, 16) == bytes([signal.SIGUSR1])
        if restart:
            _wait_sleeping(child, nr, f"{op} {path} after a SA_RESTART handler")
            wake()
        out, _ = child.communicate(timeout=REACH_S)
        assert child.returncode == 0, out
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(wakeup_r)
    result, err, handlers, data = out.split()
    return int(result), err, int(handlers), b"" if data == "-" else bytes.fromhex(data)
