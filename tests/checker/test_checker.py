"""The checker's own tests: each check must fail on what it exists to catch.

Runs in a VM of its own (`make check-checker`), never in the normal run: it loads
kcheck_selftest.ko, which leaks, warns, inverts a lock order, sleeps in state D, spins with
preemption off or panics on purpose, and kcheck_c_selftest.ko, which makes KASAN and UBSAN
report, and then asserts that tests/kcheck.py reports exactly that. The order of the tests
matters: a lockdep report, a KASAN report and an Oops each switch lockdep off, and an Oops
leaves its module stuck in its init, so they come late, the Oops last.
"""

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)

import kcheck  # noqa: E402
from helpers import libc  # noqa: E402

SELFTEST_KO = os.path.join(REPO, "tests", "checker", "kcheck_selftest.ko")
C_SELFTEST_KO = os.path.join(REPO, "tests", "checker", "kcheck_c_selftest.ko")
KCHECK = [sys.executable, os.path.join(TESTS, "kcheck.py")]


def load_selftest(misbehave, module=SELFTEST_KO):
    subprocess.run(["insmod", module, f"misbehave={misbehave}"], check=True)
    name = os.path.basename(module).removesuffix(".ko")
    subprocess.run(["rmmod", name], check=True)


def log_lines():
    return len(kcheck.kernel_log().splitlines())


def run_kcheck(*args):
    return subprocess.run(KCHECK + list(args), capture_output=True, text=True)


def test_log_scanner_on_known_reports():
    text = "\n".join([
        "[    1.0] virtio: all fine",
        "[    2.0] BUG: KASAN: slab-out-of-bounds in scull_write+0x1/0x2",
        "[    3.0] WARNING: CPU: 1 PID: 42 at scull.rs:10 scull_open+0x4/0x8",
        "[    4.0] WARNING: possible circular locking dependency detected",
        "[    5.0] Oops: general protection fault, probably for non-canonical address",
        "[    6.0] UBSAN: shift-out-of-bounds in lib/foo.c:1:2",
        "[    7.0] kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
        "[    8.0]  Call Trace:",
        "[    9.0] rust_kernel: panicked at scull.rs:1:1:",
    ])
    kinds = [kind for _, kind, _ in kcheck.scan_log(text)]
    assert kinds == ["KASAN", "WARNING", "lockdep", "Oops", "UBSAN", "kmemleak",
                     "Call Trace", "Rust panic"]
    assert kcheck.scan_log(text, since=9) == []
    assert kcheck.scan_log("[ 1.0] scull: major 240, minors 0..4\n") == []


def test_kunit_result_parsing():
    text = "\n".join([
        "[    1.0]     ok 1 layout_limits",
        "[    1.1]     not ok 2 locate_is_arithmetic",
        "[    1.2] not ok 1 scull_storage",
        "[    1.3] ok 2 other_suite",
    ])
    assert kcheck.kunit_results(text) == {"scull_storage": False, "other_suite": True}
    assert len(kcheck.failed_kunit_cases(text)) == 2


def test_kunit_skipped_cases_fail_the_run():
    """A skipped case tested nothing: the run it belongs to fails, and so does a suite
    skipped whole. The next run of the suite is judged on its own cases."""
    text = "\n".join([
        "[    1.0]     ok 1 layout_limits",
        "[    1.1]     ok 2 locate_is_arithmetic # SKIP no quanta",
        "[    1.2] ok 1 scull_storage",
        "[    2.0]     ok 1 layout_limits",
        "[    2.2] ok 1 scull_storage",
        "[    3.0] ok 2 scull_pipe_ring # SKIP not built",
    ])
    assert kcheck.kunit_runs(text) == {"scull_storage": [False, True],
                                       "scull_pipe_ring": [False]}
    assert len(kcheck.failed_kunit_cases(text)) == 2


def test_kunit_every_run_counts():
    """A suite runs at every load of its module: one failed run among passes fails it."""
    text = "\n".join([
        "[    1.0] ok 1 scull_storage",
        "[    2.0]     not ok 3 write_limits",
        "[    2.1] not ok 1 scull_storage",
        "[    3.0] ok 1 scull_storage",
    ])
    assert kcheck.kunit_runs(text) == {"scull_storage": [True, False, True]}
    assert kcheck.kunit_results(text) == {"scull_storage": False}


def test_lost_log_records_are_noticed():
    record = "6,{},100,-;line".format
    assert kcheck.lost_records([record(0).encode(), record(1).encode()]) == (0, 0)
    # The ring wrapped before the check: the oldest record kept is not the first, and the
    # seven before it are lost.
    assert kcheck.lost_records([record(7).encode(), record(8).encode()]) == (7, 7)
    # Records vanished while being read, or a gap in the numbers.
    assert kcheck.lost_records([record(0).encode(), None]) == (0, 1)
    assert kcheck.lost_records([record(0).encode(), record(5).encode()]) == (0, 4)
    # This boot's own log is whole.
    assert kcheck.lost_records(kcheck.read_kmsg()) == (0, 0)
    assert run_kcheck("dropped").returncode == 0


def test_clean_module_leaves_clean_log():
    since = log_lines()
    load_selftest(0)
    result = run_kcheck("log", "--since", str(since))
    assert result.returncode == 0, result.stdout


def test_kmemleak_reports_a_leak():
    kcheck.kmemleak_clear()
    # Unloaded before the scan, as guest-test does: kmemleak counts stale values left in a
    # loaded module's memory as references.
    load_selftest(1)
    report = kcheck.kmemleak_scan()
    try:
        # Most of the 64 leaked objects (a stale copy of an address can hide one).
        assert report.count("unreferenced object") >= 32, report[:2000]
        # The leaked objects: filled with 0x5a by the module, allocated by insmod.
        assert "5a 5a 5a 5a 5a 5a 5a 5a" in report
        assert 'comm "insmod"' in report
        # And the command-line check fails on it.
        result = run_kcheck("kmemleak")
        assert result.returncode == 1
        assert "leak" in result.stdout
    finally:
        kcheck.kmemleak_clear()


def test_log_check_reports_a_warning():
    since = log_lines()
    load_selftest(2)
    log_check_names(since, "WARNING")
    # A WARN taints the kernel (W), and the health check says so.
    assert "W" in unexpected_taint()


# Last: a lockdep report switches lockdep off for the rest of the boot.
def test_log_check_reports_a_lockdep_splat():
    since = log_lines()
    load_selftest(3)
    findings = log_check_names(since, "lockdep")
    assert any("circular locking" in line for _, _, line in findings), findings
    # lockdep switched itself off, which the health check reports.
    assert kcheck.debug_locks() == 0
    health = run_kcheck("health")
    assert health.returncode == 1, health.stdout
    assert "lockdep turned itself off" in health.stdout, health.stdout


def log_check_names(since, kind):
    """Checks that the log since line `since` holds a finding of `kind`, and that the
    command-line check fails on it, naming it. Returns the findings."""
    findings = kcheck.scan_log(kcheck.kernel_log(), since)
    assert any(found == kind for _, found, _ in findings), findings
    result = run_kcheck("log", "--since", str(since))
    assert result.returncode == 1, result.stdout
    named = {name for header in re.findall(r"^--- (.*) at log line", result.stdout, re.M)
             for name in header.split(", ")}
    assert kind in named, result.stdout
    return findings


def unexpected_taint():
    """The taint flags that the health check fails on (it must fail)."""
    health = run_kcheck("health")
    assert health.returncode == 1, health.stdout
    return set(re.search(r"tainted (\S+)", health.stdout).group(1))


@contextlib.contextmanager
def tunable(path, value):
    """Writes `value` to the sysctl or parameter file `path`, and puts the old value back."""
    with open(path) as f:
        old = f.read().strip()
    with open(path, "w") as f:
        f.write(str(value))
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(old)


def test_log_check_reports_ubsan():
    since = log_lines()
    load_selftest(2, C_SELFTEST_KO)
    findings = log_check_names(since, "UBSAN")
    assert any("array-index-out-of-bounds" in line for _, _, line in findings), findings


def test_log_check_reports_a_hung_task():
    """insmod sleeps in state D for 5 s, past a hung-task timeout of 1 s."""
    since = log_lines()
    with tunable("/proc/sys/kernel/hung_task_timeout_secs", 1):
        load_selftest(4)
    findings = log_check_names(since, "hung task")
    assert any("task insmod:" in line for _, _, line in findings), findings


SYS_MEMBARRIER, MEMBARRIER_CMD_GLOBAL = 324, 1


def rcu_kthreads():
    """The pids of RCU's grace-period kthreads: rcu_preempt, and the expedited workers."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except FileNotFoundError:
            continue
        if comm == "rcu_preempt" or comm.startswith("rcu_exp"):
            pids.append(int(pid))
    assert pids, "no RCU grace-period kthread"
    return pids


@contextlib.contextmanager
def on_cpu(pids, cpu):
    """Keeps the tasks `pids` on `cpu`, and gives them back their CPUs after."""
    old = {pid: os.sched_getaffinity(pid) for pid in pids}
    try:
        for pid in pids:
            os.sched_setaffinity(pid, {cpu})
        yield
    finally:
        for pid, cpus in old.items():
            os.sched_setaffinity(pid, cpus)


def spin_while_waiting_for_rcu():
    """Loads kcheck_selftest.ko to spin with preemption off for 12 s on CPU 1, and meanwhile
    waits on CPU 0 for one RCU grace period after another (membarrier's
    MEMBARRIER_CMD_GLOBAL is synchronize_rcu()), so that one starts while CPU 1 spins and
    stalls behind it. RCU's own kthreads stay on CPU 0 too: one woken on the spinning CPU
    would wait there for the spin to end, and no grace period would start."""
    with on_cpu([os.getpid()] + rcu_kthreads(), 0):
        insmod = subprocess.Popen(["insmod", SELFTEST_KO, "misbehave=5"],
                                  preexec_fn=lambda: os.sched_setaffinity(0, {1}))
        try:
            while insmod.poll() is None:
                assert libc.syscall(SYS_MEMBARRIER, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0, \
                    os.strerror(ctypes.get_errno())
        finally:
            insmod.wait()
    assert insmod.returncode == 0
    subprocess.run(["rmmod", "kcheck_selftest"], check=True)


def test_log_check_reports_a_soft_lockup_and_an_rcu_stall():
    """A CPU spins with preemption off for 12 s: past the soft-lockup threshold of 2 s (twice
    watchdog_thresh) and RCU's stall timeout of 3 s (the least it takes), to which
    CONFIG_PROVE_RCU adds 5 s."""
    since = log_lines()
    with tunable("/proc/sys/kernel/watchdog_thresh", 1), \
            tunable("/sys/module/rcupdate/parameters/rcu_cpu_stall_timeout", 3):
        spin_while_waiting_for_rcu()
    log_check_names(since, "soft lockup")
    log_check_names(since, "RCU stall")
    assert "L" in unexpected_taint()


def test_log_check_reports_an_expedited_rcu_stall():
    """The same spin, with every grace period expedited (rcu_expedited): an expedited
    stall, which RCU reports in words of its own. Its timeout is set in milliseconds: by
    default it is the normal one's, which CONFIG_PROVE_RCU stretches past the spin."""
    since = log_lines()
    with tunable("/sys/module/rcupdate/parameters/rcu_exp_cpu_stall_timeout", 1000), \
            tunable("/sys/kernel/rcu_expedited", 1):
        spin_while_waiting_for_rcu()
    findings = log_check_names(since, "RCU stall")
    assert any("detected expedited stalls" in line for _, _, line in findings), findings


# A KASAN report switches lockdep off, as the lockdep report before it did.
def test_log_check_reports_kasan():
    since = log_lines()
    load_selftest(1, C_SELFTEST_KO)
    findings = log_check_names(since, "KASAN")
    assert any("slab-out-of-bounds" in line for _, _, line in findings), findings
    assert "B" in unexpected_taint()


# Last of all: the panicking module stays stuck in its init, and the Oops taints the kernel.
def test_log_check_reports_a_rust_panic_as_an_oops():
    since = log_lines()
    insmod = subprocess.run(["insmod", SELFTEST_KO, "misbehave=6"])
    # The Oops kills insmod as a segfault would: its init never returns.
    assert insmod.returncode == -signal.SIGSEGV, insmod.returncode
    log_check_names(since, "Rust panic")
    log_check_names(since, "Oops")
    assert "D" in unexpected_taint()
