"""The memory all scull devices may hold: bounded like tmpfs's size, shown in /proc."""

import errno
import os
import subprocess

import pytest

import kcheck
from helpers import (MAX_DEVICE_SIZE, NR_DEVS, QSET, QUANTUM, dev, memory_view, new_log, opened,
                     raw_errno, read_dev, write_dev)



def totals():
    return memory_view()["total"]


def mem_total_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


# Under KASAN on TCG, writing a quarter of a 3 GiB guest's RAM takes minutes.
@pytest.mark.timeout(1200)
def test_the_default_limit_holds_before_memory_runs_out(log_since):
    """With the default parameters, writing into every scull device until it refuses ends in
    ENOSPC from the budget, before the kernel runs out of memory: nobody is OOM-killed and
    the machine still works. On a debug kernel a quantum costs more than twice what the
    budget counts (KASAN's redzones, kmemleak's objects), which half of RAM did not allow
    for."""
    limit = totals()["limit"]
    assert 0 < limit < mem_total_bytes()
    # What earlier tests left in the other devices (the access devices, say) stays there,
    # but for the devices of scullpriv sessions that ended: they go when the budget runs out.
    rows = memory_view()
    garbage = sum(row["allocated"] for name, row in rows.items()
                  if name.startswith("scullpriv.") and row["alive"] == 0)
    held_before = rows["total"]["used"] - garbage
    block = b"m" * (1 << 20)
    written = 0
    refused = {}
    fds = [os.open(dev(n), os.O_WRONLY) for n in range(NR_DEVS)]
    try:
        # A megabyte to each device in turn, until every one has refused a write.
        while len(refused) < NR_DEVS:
            for n, fd in enumerate(fds):
                if n in refused:
                    continue
                try:
                    written += os.write(fd, block)
                except OSError as err:
                    refused[n] = err.errno
        assert refused == {n: errno.ENOSPC for n in range(NR_DEVS)}
        used = totals()["used"]
        assert written <= used - held_before and used <= limit
        # The quantum sets' slot arrays are what the budget counts beyond the data.
        assert written >= (limit - held_before) * 0.95, (written, limit, held_before)
        # Something else can still get memory: dd's 64 MiB buffer, touched by the copy.
        dd = subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=2"],
                            capture_output=True, text=True)
        assert dd.returncode == 0, dd.stderr
    finally:
        for fd in fds:
            os.close(fd)
        for n in range(NR_DEVS):
            os.close(os.open(dev(n), os.O_WRONLY))
    assert totals()["used"] == held_before
    assert kcheck.scan_log(new_log(log_since)) == []


def test_writes_past_the_limit_move_what_fits_then_get_enospc(scull_params):
    # 100 quanta of 1000 bytes fit, with their quantum set (1000 slots of 24 bytes) and
    # the array's first slot: 100000 + 24000 + 24 bytes.
    scull_params("scull_quantum=1000", "scull_mem_limit=124024")
    assert totals()["limit"] == 124024
    with opened(dev(0), os.O_RDWR) as fd:
        assert os.write(fd, bytes(150_000)) == 100_000
        assert totals()["used"] == 124024
        try:
            os.write(fd, b"x")
            raise AssertionError("a write past the limit succeeded")
        except OSError as err:
            assert err.errno == errno.ENOSPC
        # Overwriting what is there costs nothing new.
        assert os.pwrite(fd, b"y" * 5000, 0) == 5000
    # Every device draws from the same budget, the access devices too.
    for path in (dev(1), "/dev/scullsingle"):
        with opened(path, os.O_WRONLY) as fd:
            try:
                os.write(fd, b"z")
                raise AssertionError(f"{path} wrote past the shared limit")
            except OSError as err:
                assert err.errno == errno.ENOSPC
    # Trimming gives the memory back, and writes work again.
    os.close(os.open(dev(0), os.O_WRONLY))
    assert totals()["used"] == 0
    write_dev(dev(1), b"room again")
    assert read_dev(dev(1)) == b"room again"
    assert totals()["used"] == 1000 + 24000 + 24


# No process can map an address this low (vm.mmap_min_addr): a copy from it always faults.
UNMAPPED = 0x100


def test_a_write_that_moves_nothing_keeps_no_memory():
    """A write whose source faults at once returns EFAULT and leaves the device and the
    budget as they were, however far from the data it aimed: the quantum set, the quantum
    and the array of quantum sets that it grew on the way are all given back."""
    far = (QUANTUM * QSET * 3 + 5, MAX_DEVICE_SIZE - 1)
    with opened(dev(0), os.O_RDWR) as fd:
        for offset in (0,) + far:
            assert raw_errno("pwrite", fd, UNMAPPED, 1, offset) == (-1, errno.EFAULT)
            assert (totals()["used"], totals()["allocated"], totals()["size"]) == (0, 0, 0), \
                f"after a failed write at {offset}: {totals()}"
        # With data there, a failed far write gives back only what it grew itself.
        assert os.pwrite(fd, b"data", 0) == 4
        before = totals()
        for offset in far:
            assert raw_errno("pwrite", fd, UNMAPPED, 1, offset) == (-1, errno.EFAULT)
            assert totals() == before, f"after a failed write at {offset}"
        assert os.pread(fd, 8, 0) == b"data"


CGROUP_ROOT = "/sys/fs/cgroup"
WRITTEN = 8 << 20


def cgroup_v2():
    """The cgroup v2 root with the memory controller on for its children; mounted if the
    guest has not."""
    if not os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers"):
        os.makedirs(CGROUP_ROOT, exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup2", "none", CGROUP_ROOT], check=True)
    with open(f"{CGROUP_ROOT}/cgroup.subtree_control", "w") as f:
        f.write("+memory")
    return CGROUP_ROOT


def memory_current(group):
    with open(f"{group}/memory.current") as f:
        return int(f.read())


def test_a_writer_is_charged_for_what_it_makes_scull_hold():
    """GFP_KERNEL_ACCOUNT: quanta count in the writer's memory cgroup, and leave it when the
    device is trimmed, whoever trims it."""
    group = os.path.join(cgroup_v2(), "scull-writer")
    os.mkdir(group)
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.read(go_r, 1)                       # moved into the group by now
        fd = os.open(dev(0), os.O_WRONLY)
        chunk = bytes(1 << 20)
        for _ in range(WRITTEN // len(chunk)):
            os.write(fd, chunk)
        os.close(fd)
        del chunk                              # its pages count in the group too
        os.write(done_w, b"x")
        os.read(go_r, 1)                       # stays in the group until told
        os._exit(0)
    os.close(go_r)
    try:
        with open(f"{group}/cgroup.procs", "w") as f:
            f.write(str(pid))
        before = memory_current(group)
        os.write(go_w, b"x")
        assert os.read(done_r, 1) == b"x"
        charged = memory_current(group) - before
        allocated = totals()["allocated"]
        assert allocated >= WRITTEN
        # The quanta and their arrays are charged. Slab rounding, and on this KASAN kernel
        # each object's redzones, make the charge larger than what scull asked for.
        assert allocated <= charged <= allocated * 3 + (1 << 20), (charged, allocated)
        # Trimmed from outside the group: the charge goes with the memory (what stays is the
        # writer's own, Python's heap).
        peak = memory_current(group)
        os.close(os.open(dev(0), os.O_WRONLY))
        assert peak - memory_current(group) >= allocated, (peak, memory_current(group))
    finally:
        os.write(go_w, b"x")
        os.close(go_w)
        os.close(done_r)
        os.close(done_w)
        os.waitpid(pid, 0)
        os.rmdir(group)


BOUND = 32 << 20


def memory_events(group):
    with open(f"{group}/memory.events") as f:
        return {key: int(value) for key, value in (line.split() for line in f)}


# Writes its 1 MiB buffer to argv[1] until a write fails, and exits with that errno. Static
# and run from tmpfs, with its buffer faulted in before the first write: once scull has
# filled the group, a page the writer itself needed (a forked Python's copy-on-write, a
# dynamic library's page read through the guest's 9p root) could not be charged either, and
# the memcg OOM killer would take the writer whatever scull did.
BOUNDED_WRITER = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buffer[1 << 20];
static char report[64];

int main(int argc, char **argv)
{
	int fd = open(argv[1], O_WRONLY);
	int out = atoi(argv[2]);

	if (fd < 0)
		return 255;
	/*
	 * Everything this process touches after the bound is faulted in now: past memory.max
	 * any new page of its own (a stdio buffer, a pipe page, a page of stack, a first write
	 * to a page of its .data) is charged without __GFP_RETRY_MAYFAIL, and the memcg OOM
	 * killer takes the writer. So the report goes into a page of a file that the parent
	 * already filled, the code that writes it runs once here, and the writer ends with
	 * _exit(): exit() would write glibc's data.
	 */
	if (snprintf(report, sizeof(report), "%lu %lu", 0UL, 0UL) < 0 ||
	    pwrite(out, "        ", 8, 0) != 8)
		_exit(253);
	errno = 0;
	for (unsigned long i = 0; i < sizeof(buffer); i += 4096)
		buffer[i] = 'x';
	for (unsigned long moved = 0, last = 0;;) {
		long n = write(fd, buffer, sizeof(buffer));

		if (n < 0) {
			int err = errno;
			int length = snprintf(report, sizeof(report), "%lu %lu\n", moved, last);

			_exit(pwrite(out, report, length, 0) == length ? err : 254);
		}
		moved += n;
		last = n;
	}
}
"""


def test_a_writer_cannot_push_its_cgroup_past_memory_max(tmp_path, capsys):
    """memory.max bounds what a writer makes scull hold. At the bound a write moves what fits
    and returns that count, and the next fails with ENOMEM; nobody is OOM-killed: the data
    outlives the writer, so killing it could not give the memory back (hence
    __GFP_RETRY_MAYFAIL). The device holds exactly what the writes said they moved."""
    src = tmp_path / "bounded_writer.c"
    src.write_text(BOUNDED_WRITER)
    writer = tmp_path / "bounded_writer"
    subprocess.run(["cc", "-static", "-O2", "-Wall", "-Werror", "-o", str(writer), str(src)],
                   check=True)
    group = os.path.join(cgroup_v2(), "scull-bounded")
    os.mkdir(group)
    try:
        with open(f"{group}/memory.max", "w") as f:
            f.write(str(BOUND))

        def join_group():
            with open(f"{group}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

        report = tmp_path / "report"
        report.write_bytes(b" " * 4096)
        with open(report, "r+b") as out:
            status = subprocess.run([str(writer), dev(0), str(out.fileno())],
                                    preexec_fn=join_group, pass_fds=[out.fileno()]).returncode
        events = memory_events(group)
        assert events["oom_kill"] == 0 and events["max"] > 0, (events, status)
        assert status == errno.ENOMEM, status
        moved, last = map(int, report.read_text().split())
        # What scull holds stays charged to the group, within its bound, and it is most of
        # what the group was allowed.
        used, charged = totals(), memory_current(group)
        with capsys.disabled():
            print(f"\nmemory.max {BOUND}: memory.current {charged}, scull allocated "
                  f"{used['allocated']} (size {used['size']}), the writes moved {moved}, "
                  f"the last of them {last}, events {events}")
        assert used["size"] == moved, (used, moved)
        assert BOUND // 4 < used["allocated"] <= charged <= BOUND, (used, charged)
        # Trimming gives the group its memory back, and the device works on.
        os.close(os.open(dev(0), os.O_WRONLY))
        assert memory_current(group) < BOUND // 4
        write_dev(dev(0), b"after the bound")
        assert read_dev(dev(0)) == b"after the bound"
    finally:
        os.rmdir(group)
