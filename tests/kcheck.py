"""Reads the guest kernel's verdict: log reports, kmemleak leaks, KUnit results.

Used by scripts/guest-test after the test suite, and by tests/checker/ to prove that each
check fails when it should. Runs in the guest as root; needs debugfs for kmemleak.

    python3 tests/kcheck.py log [--since N]     fail on any report in the kernel log
    python3 tests/kcheck.py kmemleak            scan for leaks, fail on any
    python3 tests/kcheck.py kmemleak-baseline   scan, then forget what exists now (boot)
    python3 tests/kcheck.py kunit SUITE...      fail unless each suite ran, and passed
                                                every time it ran
    python3 tests/kcheck.py dropped             fail if the log lost records (ring wrapped)
    python3 tests/kcheck.py health [--release]  fail on an unexpected taint flag or if
                                                lockdep switched itself off; --release: a
                                                distribution kernel (no lockdep, and E for
                                                scull-rs's unsigned modules)
    python3 tests/kcheck.py lines               print how many lines the log has now
"""

import argparse
import os
import re
import subprocess
import sys
import time

DEBUGFS = "/sys/kernel/debug"
KMEMLEAK = os.path.join(DEBUGFS, "kmemleak")

# kmemleak never reports an object younger than this (MSECS_MIN_AGE in mm/kmemleak.c).
KMEMLEAK_MIN_AGE_S = 5

# What a healthy kernel never prints. Each line that matches is a finding, of the first kind
# that matches: the specific kinds come first (a KASAN or soft-lockup report begins "BUG: ",
# a lockdep one "WARNING: "), so that a finding is named for what it is.
REPORT_PATTERNS = [
    # "BUG: KASAN: slab-out-of-bounds in", "KASAN: null-ptr-deref in range" (an Oops line
    # names KASAN too, without the colon).
    ("KASAN", r"\bKASAN: "),
    ("UBSAN", r"\bUBSAN: "),
    ("soft lockup", r"soft lockup - CPU#"),
    ("hard lockup", r"Watchdog detected hard LOCKUP"),
    ("hung task", r"INFO: task .* blocked for more than"),
    # "self-detected stall", "detected stalls on CPUs/tasks", "detected expedited stalls".
    ("RCU stall", r"rcu: .*detected (expedited )?stall"),
    ("lockdep", r"possible (circular|recursive) locking|inconsistent lock state|"
                r"DEBUG_LOCKS_WARN_ON|lockdep is turned off|suspicious RCU usage"),
    ("kmemleak", r"kmemleak: .*(suspected memory leak|disabled|[Ee]rror)"),
    ("Rust panic", r"rust_panic|panicked at"),
    ("Oops", r"\bOops\b"),
    ("general protection fault", r"general protection fault"),
    ("list corruption", r"list_(add|del) corruption"),
    ("refcount", r"refcount_t: "),
    ("OOM", r"invoked oom-killer|Out of memory|oom-kill:"),
    ("panic", r"Kernel panic"),
    ("BUG", r"\bBUG: "),
    ("BUG", r"kernel BUG at"),
    ("WARNING", r"\bWARNING: "),
    ("Call Trace", r"Call Trace:"),
]
_REPORT_RE = [(kind, re.compile(rx)) for kind, rx in REPORT_PATTERNS]


def kernel_log():
    """The whole kernel log, one string (needs root, as dmesg does)."""
    return subprocess.run(["dmesg"], check=True, capture_output=True, text=True).stdout


def scan_log(text, since=0):
    """Returns (line number, kind, line) for each report in `text` from line `since` on."""
    findings = []
    for number, line in enumerate(text.splitlines()):
        if number < since:
            continue
        for kind, rx in _REPORT_RE:
            if rx.search(line):
                findings.append((number, kind, line))
                break
    return findings


def format_findings(text, findings, context=12):
    """The finding lines with some context after each, for a human: one block per finding,
    or per run of findings close enough to share one, headed by the kinds it holds."""
    lines = text.splitlines()
    blocks = []
    for number, kind, _ in findings:
        if blocks and number < blocks[-1]["end"]:
            if kind not in blocks[-1]["kinds"]:
                blocks[-1]["kinds"].append(kind)
            continue
        blocks.append({"start": number, "end": min(len(lines), number + context),
                       "kinds": [kind]})
    out = []
    for block in blocks:
        out.append(f"--- {', '.join(block['kinds'])} at log line {block['start']}:")
        out.extend(lines[block["start"]:block["end"]])
    return "\n".join(out)


def kmemleak_scan():
    """Scans for leaks the reliable way and returns kmemleak's report ('' when clean).

    An object is reported only when it is older than the minimum age and was found
    unreferenced by two scans in a row, so: wait past the age, scan, scan again.
    """
    if not os.path.exists(KMEMLEAK):
        raise RuntimeError(f"{KMEMLEAK} is missing: kernel without CONFIG_DEBUG_KMEMLEAK, "
                           "or debugfs not mounted")
    time.sleep(KMEMLEAK_MIN_AGE_S + 1)
    for _ in range(2):
        with open(KMEMLEAK, "w") as f:
            f.write("scan")
    with open(KMEMLEAK) as f:
        return f.read()


def kmemleak_clear():
    """Forgets every leak reported so far, so the next scan shows only new ones."""
    with open(KMEMLEAK, "w") as f:
        f.write("clear")


def kmemleak_baseline():
    """Makes objects that are unreferenced now (from boot) unreportable, and returns how many
    there were.

    `clear` only affects objects that a scan has already found unreferenced: without a scan
    first, boot-time leaks would be reported later as if the tests had made them.
    """
    report = kmemleak_scan()
    kmemleak_clear()
    return report.count("unreferenced object")


def read_kmsg():
    """Every record /dev/kmsg holds now, oldest first; None where records vanished under the
    reader (EPIPE: the ring buffer overwrote them)."""
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                yield os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            except BrokenPipeError:
                yield None
    finally:
        os.close(fd)


def lost_records(records):
    """(first sequence number, records lost) of /dev/kmsg records ("prio,seq,time,flags;text").

    Every record ever printed has a sequence number from 0. When the ring buffer wraps, the
    oldest records are overwritten: the first one readable is then past 0, or records vanish
    while they are read.
    """
    first, expected, lost = None, 0, 0
    for record in records:
        if record is None:
            lost += 1
            continue
        seq = int(record.split(b";", 1)[0].split(b",")[1])
        if first is None:
            first = seq
        lost += max(0, seq - expected)
        expected = seq + 1
    return first, lost


# Taint flags (include/linux/panic.h), by bit. A test run may set O (scull-rs is out of tree)
# and N (KUnit ran); any other flag means the kernel saw something go wrong or unusual.
TAINT_LETTERS = "PFSRMBUDAWCIOELKXTNJ"
EXPECTED_TAINT = {"O", "N"}
# A distribution kernel signs its modules (CONFIG_MODULE_SIG): loading scull-rs's unsigned
# ones adds E. It runs no KUnit, so N would be as wrong there as anything else.
EXPECTED_TAINT_RELEASE = {"O", "E"}


def taint_flags():
    with open("/proc/sys/kernel/tainted") as f:
        value = int(f.read())
    return {TAINT_LETTERS[bit] if bit < len(TAINT_LETTERS) else f"bit{bit}"
            for bit in range(64) if value >> bit & 1}


def debug_locks():
    """lockdep's debug_locks: 0 once lockdep has reported a problem and turned itself off."""
    with open("/proc/lockdep_stats") as f:
        for line in f:
            if line.strip().startswith("debug_locks:"):
                return int(line.split(":")[1])
    raise RuntimeError("no debug_locks in /proc/lockdep_stats: kernel without lockdep?")


# KTAP, as the log holds it: a suite's result at top level ("ok 1 scull_storage", "not ok 1
# scull_storage", or "ok 1 scull_storage # SKIP reason"), after its cases' results, indented
# ("    ok 3 write_limits", "    ok 4 write_limits # SKIP reason").
_KUNIT_SUITE_RE = re.compile(r"\]\s(not ok|ok) \d+ (\w+)(\s+#\s*SKIP\b.*)?\s*$")
_KUNIT_FAILED_CASE_RE = re.compile(r"\]\s+not ok \d+ ")
_KUNIT_SKIPPED_CASE_RE = re.compile(r"\]\s\s+ok \d+ .*#\s*SKIP\b")


def kunit_runs(text):
    """Maps each KUnit suite seen in `text` to its results, one bool (passed) per run: a
    module's suites run at every load. A run passed when the suite reported ok and skipped
    nothing: a skipped case tested nothing, and a suite of scull-rs's has no reason to skip."""
    runs = {}
    skipped_case = False
    for line in text.splitlines():
        m = _KUNIT_SUITE_RE.search(line)
        if m:
            passed = m.group(1) == "ok" and not m.group(3) and not skipped_case
            runs.setdefault(m.group(2), []).append(passed)
            skipped_case = False
        elif _KUNIT_SKIPPED_CASE_RE.search(line):
            skipped_case = True
    return runs


def kunit_results(text):
    """Maps each KUnit suite seen in `text` to True when every run passed."""
    return {suite: all(results) for suite, results in kunit_runs(text).items()}


def failed_kunit_cases(text):
    """The failed and skipped results (cases, and suites skipped whole) in `text`."""
    return [line for line in text.splitlines()
            if _KUNIT_FAILED_CASE_RE.search(line) or _KUNIT_SKIPPED_CASE_RE.search(line)
            or (_KUNIT_SUITE_RE.search(line) and "SKIP" in line)]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    log = sub.add_parser("log")
    log.add_argument("--since", type=int, default=0, help="first log line to check")
    sub.add_parser("kmemleak")
    sub.add_parser("kmemleak-baseline")
    sub.add_parser("dropped")
    health = sub.add_parser("health")
    health.add_argument("--release", action="store_true",
                        help="a distribution kernel: no lockdep, E expected")
    sub.add_parser("lines")
    kunit = sub.add_parser("kunit")
    kunit.add_argument("suites", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "lines":
        print(len(kernel_log().splitlines()))
        return 0
    if args.command == "log":
        text = kernel_log()
        findings = scan_log(text, args.since)
        if findings:
            print(format_findings(text, findings))
            print(f"kcheck: {len(findings)} report(s) in the kernel log")
            return 1
        print("kcheck: kernel log clean")
        return 0
    if args.command == "kmemleak":
        report = kmemleak_scan()
        if report.strip():
            print(report)
            print(f"kcheck: kmemleak reports {report.count('unreferenced object')} leak(s)")
            return 1
        print("kcheck: kmemleak clean")
        return 0
    if args.command == "kmemleak-baseline":
        print(f"kcheck: kmemleak: {kmemleak_baseline()} object(s) unreferenced before the "
              "tests (boot) will not be reported")
        return 0
    if args.command == "kunit":
        text = kernel_log()
        runs = kunit_runs(text)
        bad = 0
        for suite in args.suites:
            results = runs.get(suite, [])
            if not results:
                print(f"kcheck: KUnit suite {suite} did not run")
                bad += 1
            elif not all(results):
                print(f"kcheck: KUnit suite {suite} failed or skipped in "
                      f"{results.count(False)} of its {len(results)} runs:")
                print("\n".join(failed_kunit_cases(text)))
                bad += 1
            else:
                print(f"kcheck: KUnit suite {suite} passed all {len(results)} runs")
        return 1 if bad else 0
    if args.command == "dropped":
        first, lost = lost_records(read_kmsg())
        if first != 0 or lost:
            print(f"kcheck: the kernel log lost records (first kept: {first}, gaps: {lost}): "
                  "a report may be hidden; boot with a larger log_buf_len")
            return 1
        print("kcheck: the kernel log holds every record since boot")
        return 0
    if args.command == "health":
        bad = 0
        unexpected = taint_flags() - (EXPECTED_TAINT_RELEASE if args.release else EXPECTED_TAINT)
        if unexpected:
            print(f"kcheck: the kernel is tainted {''.join(sorted(unexpected))} "
                  f"(all flags: {''.join(sorted(taint_flags()))})")
            bad += 1
        if not args.release and debug_locks() != 1:
            print("kcheck: lockdep turned itself off (debug_locks 0): it found a problem")
            bad += 1
        if not bad:
            print(f"kcheck: taint {''.join(sorted(taint_flags())) or 'none'} (expected), "
                  + ("a release kernel without lockdep" if args.release else "lockdep on"))
        return 1 if bad else 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
