"""The course's stress test at its defaults, and concurrent mixed use of one device."""

import errno
import multiprocessing
import os
import random
import time

import pytest

import kcheck
import multithread_write
from helpers import QUANTUM, dev, new_log


@pytest.mark.timeout(600)
def test_five_threads_write_512_mib_each(log_since):
    multithread_write.run(dev(0))
    assert multithread_write.check(dev(0)) is None
    assert kcheck.scan_log(new_log(log_since)) == []
    # Free the 512 MiB before the next test.
    os.close(os.open(dev(0), os.O_WRONLY))


def churn(path, seed, seconds, results):
    """Reads, writes, reopens write-only (trim) and seeks at random for `seconds`."""
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    ops = 0
    unexpected = []
    fd = os.open(path, os.O_RDWR)
    while time.monotonic() < deadline:
        op = rng.randrange(5)
        try:
            if op == 0:
                os.pwrite(fd, bytes([seed]) * rng.randrange(1, 3 * QUANTUM), rng.randrange(1 << 22))
            elif op == 1:
                os.pread(fd, rng.randrange(1, 1 << 16), rng.randrange(1 << 22))
            elif op == 2:
                os.close(os.open(path, os.O_WRONLY))
            elif op == 3:
                os.lseek(fd, rng.randrange(-100, 1 << 22), rng.choice([os.SEEK_SET, os.SEEK_CUR,
                                                                          os.SEEK_END]))
            else:
                os.write(fd, b"w" * rng.randrange(1, 5000))
            ops += 1
        except OSError as exc:
            # A seek before the start is the only error this workload can cause.
            if not (op == 3 and exc.errno == errno.EINVAL):
                unexpected.append(f"op {op}: {exc}")
    os.close(fd)
    results.put((ops, unexpected))


def test_concurrent_readers_writers_trimmers_and_seekers(log_since):
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=churn, args=(dev(2), n, 8, results))
               for n in range(6)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    assert all(ops > 0 for ops, _ in outcomes)
    assert [u for _, u in outcomes if u] == []
    assert kcheck.scan_log(new_log(log_since)) == []
