"""The checker's own tests: each check must fail on what it exists to catch.

Runs in a VM of its own (`make check-checker`), never in the normal run: it loads
kcheck_selftest.ko, which leaks, warns or inverts a lock order on purpose, and then
asserts that tests/kcheck.py reports exactly that.
"""

import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)

import kcheck  # noqa: E402

SELFTEST_KO = os.path.join(REPO, "tests", "checker", "kcheck_selftest.ko")
KCHECK = [sys.executable, os.path.join(TESTS, "kcheck.py")]


def load_selftest(misbehave):
    subprocess.run(["insmod", SELFTEST_KO, f"misbehave={misbehave}"], check=True)
    subprocess.run(["rmmod", "kcheck_selftest"], check=True)


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
    assert kinds == ["BUG", "WARNING", "WARNING", "Oops", "UBSAN", "kmemleak",
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
    findings = kcheck.scan_log(kcheck.kernel_log(), since)
    assert any(kind == "WARNING" for _, kind, _ in findings), findings
    result = run_kcheck("log", "--since", str(since))
    assert result.returncode == 1
    assert "WARNING" in result.stdout
    # A WARN taints the kernel (W), and the health check says so.
    health = run_kcheck("health")
    assert health.returncode == 1
    assert "tainted W" in health.stdout, health.stdout


# Last: a lockdep report switches lockdep off for the rest of the boot.
def test_log_check_reports_a_lockdep_splat():
    since = log_lines()
    load_selftest(3)
    text = kcheck.kernel_log()
    findings = kcheck.scan_log(text, since)
    assert any("circular locking" in line for _, _, line in findings), findings
    result = run_kcheck("log", "--since", str(since))
    assert result.returncode == 1
    # lockdep switched itself off, which the health check reports.
    assert kcheck.debug_locks() == 0
    health = run_kcheck("health")
    assert "lockdep turned itself off" in health.stdout, health.stdout
