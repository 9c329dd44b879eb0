"""LDD3 chapter 4 on a Rust driver: what ftrace and kprobes see of scull's Rust functions.

Rust symbols are v0-mangled (`_RNv...8ScullDev10write_iter`), so the tests find them in
/proc/kallsyms by the end of the mangled name, as a learner would with grep. Neither the
function tracer nor a kprobe event reaches a Rust function in 7.3; a kprobe on a C function
the Rust code calls does, and its stack traces, counted for a known number of write(2)
calls, show the Rust callers. strace, unchanged from C drivers, shows the errnos scull
returns. printk's levels work as in C; `pr_debug!` does not: it is compiled in only with
CONFIG_RUST_DEBUG_ASSERTIONS, and is no dynamic debug callsite."""

import errno
import os
import re
import subprocess

import pytest

import blocking
from helpers import REPO, dev, log_lines, new_log, opened, script

TRACING = "/sys/kernel/tracing"
# scull's write, for every scull device (`ScullDev::write_iter` in scull_fops.rs): the end
# of its v0-mangled name, which no other function of the module has.
WRITE_ITER = re.compile(r"^[0-9a-f]+ [tT] (_R\S*8ScullDev10write_iter)\s+\[scull\]$")
WRITES = 7


def scull_write_iter():
    """The mangled name of `ScullDev::write_iter`, from /proc/kallsyms."""
    with open("/proc/kallsyms") as f:
        names = [m.group(1) for m in map(WRITE_ITER.match, f) if m]
    assert len(names) == 1, f"ScullDev::write_iter in /proc/kallsyms: {names}"
    return names[0]


@pytest.fixture
def tracefs():
    """tracefs, mounted if the guest has not."""
    if not os.path.exists(os.path.join(TRACING, "trace")):
        assert os.system(f"mount -t tracefs nodev {TRACING}") == 0
    return TRACING


def tracing(name, text, mode="w"):
    """Writes `text` to tracefs file `name`, truncating it ("w") or appending ("a"), in one
    write(2), as `echo` does: Python's own append mode seeks first, which tracefs refuses."""
    flags = os.O_WRONLY | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    with opened(os.path.join(TRACING, name), flags) as fd:
        os.write(fd, (text + "\n").encode())


def write_scull0(times):
    with opened(dev(0), os.O_WRONLY) as fd:
        for _ in range(times):
            assert os.write(fd, b"trace me\n") == 9


def test_ftrace_has_no_entry_for_sculls_rust_functions(tracefs):
    """The kernel's function tracer hooks the `__fentry__` call that `-mfentry` puts at the
    start of every C function; rustc emits none in 7.3, on Debian's rustc 1.85 and the debug
    kernel's alike. So available_filter_functions lists C functions such as vfs_write, and
    none of scull's."""
    name = scull_write_iter()
    with open(os.path.join(tracefs, "available_filter_functions")) as f:
        listed = {line.split()[0] for line in f}
    assert "vfs_write" in listed
    assert name not in listed
    assert not [function for function in listed if function.startswith("_R")]


@pytest.mark.release_kernel
def test_a_kprobe_event_on_a_rust_function_is_refused_as_notrace(tracefs):
    """kprobe_events refuses a function without an ftrace entry (CONFIG_KPROBE_EVENTS_ON_NOTRACE
    is off, as in Debian's kernel), and that is every Rust function: `perf probe` and
    bpftrace's kprobes go the same way. (The debug kernel has no kprobes at all.)"""
    name = scull_write_iter()
    since = log_lines()
    with pytest.raises(OSError) as refused:
        tracing("kprobe_events", f"p:scull/write_iter {name}", mode="a")
    assert refused.value.errno == errno.EINVAL
    assert f"Could not probe notrace function {name}" in new_log(since)


@pytest.mark.release_kernel
def test_a_kprobe_on_the_c_lock_scull_takes_shows_its_rust_callers(tracefs):
    """What a learner can do instead: probe a C function that the Rust code calls, here the
    mutex that every scull write takes, with a stack trace per hit. The Rust frames show in
    the traces, mangled, and the traces through scull's write_iter number the writes."""
    tracing("kprobe_events", "p:scull/lock mutex_lock_interruptible", mode="a")
    try:
        tracing("events/scull/lock/filter", f"common_pid == {os.getpid()}")
        tracing("events/scull/lock/trigger", "stacktrace")
        tracing("trace", "")
        tracing("events/scull/lock/enable", "1")
        write_scull0(WRITES)
        tracing("events/scull/lock/enable", "0")
        with open(os.path.join(tracefs, "trace")) as f:
            stacks = f.read().split("<stack trace>")[1:]
        frames = [[line.strip()[3:] for line in stack.splitlines()
                   if line.strip().startswith("=> ")] for stack in stacks]
        writes = [stack for stack in frames
                  if any("5scull" in frame and "write_iter" in frame for frame in stack)]
        assert len(writes) == WRITES, frames
        # The writer's open (a write-only open trims, under the same lock) shows too.
        assert len(frames) > WRITES
    finally:
        tracing("events/scull/lock/trigger", "!stacktrace")
        tracing("kprobe_events", "-:scull/lock", mode="a")


def test_strace_shows_the_errnos_scull_returns(tmp_path):
    """LDD3's first tool, strace, on two refusals a learner meets: a second open of
    scullsingle while a file holds it (EBUSY, from scull_access.rs), and stty on a scull
    device, whose TCGETS scull does not know (ENOTTY, from scull_ioctl.rs). strace prints
    what the driver returned, under the name that errno(3) gives it."""
    trace = tmp_path / "strace.out"
    subprocess.run(["strace", "-f", "-o", str(trace), "-e", "trace=openat,ioctl",
                    "sh", "-c", "exec 3</dev/scullsingle; cat /dev/scullsingle; "
                                f"stty -F {dev(0)}"],
                   capture_output=True, check=False)
    text = trace.read_text()
    assert re.search(r'openat\(AT_FDCWD, "/dev/scullsingle", O_RDONLY\)\s+= -1 EBUSY '
                     r'\(Device or resource busy\)', text), text
    assert re.search(r"ioctl\(\d+, TCGETS, 0x[0-9a-f]+\)\s+= -1 ENOTTY "
                     r"\(Inappropriate ioctl for device\)", text), text


def leveled_log():
    """The kernel log as `dmesg -x` shows it, each line led by its facility and level
    ("kern  :info  : [   12.3] scull: ...")."""
    return subprocess.run(["dmesg", "-x"], check=True, capture_output=True,
                          text=True).stdout.splitlines()


def scull_lines_at(lines, level):
    """scull's messages among `lines` (of `leveled_log`) at printk level `level`."""
    return [line.split("] ", 1)[1] for line in lines
            if re.match(rf"kern\s*:{level}\s*: \[", line) and "] scull: " in line]


def test_scull_logs_its_refusals_at_err_and_its_load_at_info(scull_unloaded):
    """printk's levels, as LDD3 teaches them: `pr_err!` and `pr_info!` are KERN_ERR and
    KERN_INFO, which `dmesg -x` (or `--level`) shows, and /proc/sys/kernel/printk's first
    field compares against on the way to the console."""
    since = len(leveled_log())
    failed = subprocess.run(["insmod", os.path.join(REPO, "scull.ko"), "scull_quantum=0"],
                            capture_output=True, text=True)
    assert failed.returncode != 0
    script("scull_load")
    lines = leveled_log()[since:]
    refusals = scull_lines_at(lines, "err")
    assert any(line.startswith("scull: scull_quantum=0 is invalid") for line in refusals), lines
    loads = scull_lines_at(lines, "info")
    assert any(line.startswith("scull: major ") for line in loads), lines
    assert not [line for line in refusals if line.startswith("scull: major ")]


def scull_lines_while_cat_sleeps_on_an_empty_pipe():
    """`cat`'s pid, and scull's log lines by level from the time `cat` takes to fall asleep
    on empty scullpipe0, with `cat` proved asleep in read(2) first."""
    since = len(leveled_log())
    cat = subprocess.Popen(["cat", "/dev/scullpipe0"], stdout=subprocess.DEVNULL)
    try:
        blocking.wait_until_sleeping(cat.pid, blocking.SYS_READ, what="cat /dev/scullpipe0",
                                     returned=cat.poll)
        lines = leveled_log()[since:]
    finally:
        cat.kill()
        cat.wait()
    return cat.pid, {level: scull_lines_at(lines, level)
                     for level in ("debug", "info", "warn", "err")}


@pytest.mark.debug_kernel
def test_pr_debug_prints_at_kern_debug_where_rust_debug_assertions_are_on():
    """scullpipe's `pr_debug!`, LDD3's PDEBUG("\"%s\" reading: going to sleep") with the
    pid: the debug kernel has CONFIG_RUST_DEBUG_ASSERTIONS, so it prints, at KERN_DEBUG,
    every time."""
    pid, lines = scull_lines_while_cat_sleeps_on_an_empty_pipe()
    assert f"scull: process {pid} reading: going to sleep" in lines["debug"], lines


@pytest.mark.release_kernel
def test_pr_debug_is_compiled_out_where_rust_debug_assertions_are_off():
    """Debian's kernel has dynamic debug but not CONFIG_RUST_DEBUG_ASSERTIONS: the line is
    not in scull.ko at all, dynamic debug has no callsite of scull's to switch on, and asking
    it to print scull's debug lines changes nothing."""
    with open(os.path.join(REPO, "scull.ko"), "rb") as f:
        assert b": going to sleep" not in f.read()
    with open("/proc/dynamic_debug/control") as f:
        assert not [line for line in f if "[scull]" in line]
    with opened("/proc/dynamic_debug/control", os.O_WRONLY) as fd:
        os.write(fd, b"module scull +p\n")
    _, lines = scull_lines_while_cat_sleeps_on_an_empty_pipe()
    assert lines == {"debug": [], "info": [], "warn": [], "err": []}
