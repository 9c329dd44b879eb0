"""/proc/scullmem and /proc/scullseq: each device's layout, size, quantum sets and quanta, the
memory they cost, and totals, checked against what the tests wrote."""

import os
import stat
import threading
import time

import pytest

from helpers import (GUARDED_DEVICES, NR_DEVS, QSET, QUANTUM, dev, ensure_scull, opened, script,
                     scullctl, write_dev)

SCULLMEM = "/proc/scullmem"
SCULLSEQ = "/proc/scullseq"
# size_of::<Option<KVVec<_>>>() on 64-bit: pointer, capacity, length (the pointer is never
# null, so the Option costs nothing). One per quantum slot and one per quantum set slot.
SLOT = 24


def read_view(path, chunk=1 << 16):
    with opened(path, os.O_RDONLY) as fd:
        parts = []
        while True:
            part = os.read(fd, chunk)
            if not part:
                return b"".join(parts).decode()
            parts.append(part)


def parse(text):
    """{name: {field: int}} in file order; the totals are under 'total'."""
    rows = {}
    for line in text.splitlines():
        name, sep, fields = line.partition(": ")
        assert sep, f"malformed line {line!r}"
        rows[name] = {key: int(value) for key, value in
                      (field.split("=") for field in fields.split())}
    return rows


def ceil_div(a, b):
    return -(-a // b)


def check_device(row, quantum=QUANTUM, qset=QSET):
    """Checks the fields of a device written from offset 0 without holes, and returns the
    bytes of its array of quantum sets, which depend on how that array grew."""
    size = row["size"]
    assert (row["quantum"], row["qset"]) == (quantum, qset)
    assert row["quanta"] == ceil_div(size, quantum), row
    assert row["qsets"] == ceil_div(size, quantum * qset), row
    index = row["allocated"] - row["quanta"] * quantum - row["qsets"] * qset * SLOT
    assert index % SLOT == 0, row
    # The array holds a slot per quantum set and at most doubles when it grows.
    assert row["qsets"] <= index // SLOT <= 2 * row["qsets"], row
    return index


def check_totals(rows):
    devices = [row for name, row in rows.items() if name != "total"]
    total = rows["total"]
    assert total["devices"] == len(devices)
    for field in ("size", "allocated", "qsets", "quanta"):
        assert total[field] == sum(row[field] for row in devices), (field, rows)


def write_at(path, offset, data):
    with opened(path, os.O_RDWR) as fd:
        assert os.pwrite(fd, data, offset) == len(data)


@pytest.mark.parametrize("path", [SCULLMEM, SCULLSEQ])
def test_views_are_read_only_and_list_every_device(path):
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
    rows = parse(read_view(path))
    # Devices that scullpriv still keeps for ended sessions of earlier tests follow these
    # (test_scullpriv.py checks their lines); every test starts with these empty.
    private = [name for name in rows if name.startswith("scullpriv.")]
    fixed = [name for name in rows if name not in private]
    assert fixed == [f"scull{n}" for n in range(NR_DEVS)] + GUARDED_DEVICES + ["total"]
    for name in fixed[:-1]:
        assert rows[name] == {"quantum": QUANTUM, "qset": QSET, "size": 0,
                              "allocated": 0, "qsets": 0, "quanta": 0}
    assert rows["total"]["devices"] == NR_DEVS + len(GUARDED_DEVICES) + len(private)
    assert rows["total"]["used"] == sum(rows[name]["allocated"] for name in private)
    with pytest.raises(OSError):
        with opened(path, os.O_WRONLY) as fd:
            os.write(fd, b"1")


def test_views_match_what_was_written():
    write_dev(dev(0), b"a" * 12345)                   # 4 quanta in one quantum set
    write_dev(dev(1), b"b" * (QUANTUM * QSET + 1))    # a second quantum set, one quantum in it
    hole_at = 3 * QUANTUM * QSET + 5                  # one quantum, deep in the fourth set
    write_at(dev(2), hole_at, b"c")
    for path in (SCULLMEM, SCULLSEQ):
        rows = parse(read_view(path))
        assert rows["scull0"]["size"] == 12345
        assert rows["scull0"]["quanta"] == 4
        assert check_device(rows["scull0"]) == SLOT
        assert rows["scull1"]["quanta"] == QSET + 1 and rows["scull1"]["qsets"] == 2
        check_device(rows["scull1"])
        hole = rows["scull2"]
        assert (hole["size"], hole["quanta"], hole["qsets"]) == (hole_at + 1, 1, 1)
        # Four quantum set slots exist, three of them empty.
        assert hole["allocated"] == QUANTUM + QSET * SLOT + 4 * SLOT
        assert rows["scull3"]["allocated"] == 0
        check_totals(rows)
        stored = rows["total"]["size"] - hole_at
        assert stored == 12345 + QUANTUM * QSET + 1 + 1


def test_trim_shows_as_empty_and_new_layout_shows_after_trim():
    write_dev(dev(0), b"x" * 9000)
    scullctl("set", "quantum", "100")
    try:
        before = parse(read_view(SCULLMEM))["scull0"]
        assert (before["quantum"], before["size"], before["quanta"]) == (QUANTUM, 9000, 3)
        write_dev(dev(0), b"y" * 1000)                # trims, then adopts quantum 100
        after = parse(read_view(SCULLMEM))["scull0"]
        assert (after["quantum"], after["size"], after["quanta"]) == (100, 1000, 10)
        check_device(after, quantum=100)
    finally:
        scullctl("reset")


def test_views_follow_the_load_parameters(scull_params):
    scull_params("scull_nr_devs=2", "scull_quantum=10", "scull_qset=3")
    write_dev(dev(1), b"z" * 61)
    rows = parse(read_view(SCULLSEQ))
    assert list(rows) == ["scull0", "scull1"] + GUARDED_DEVICES + ["total"]
    assert rows["scull1"]["quanta"] == 7 and rows["scull1"]["qsets"] == 3
    check_device(rows["scull1"], quantum=10, qset=3)
    check_totals(rows)


@pytest.mark.parametrize("path", [SCULLMEM, SCULLSEQ])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_small_reads_and_seeks_give_the_same_text(path, chunk):
    write_dev(dev(3), b"q" * 4001)
    whole = read_view(path)
    assert parse(whole)["scull3"]["quanta"] == 2
    assert read_view(path, chunk) == whole
    with opened(path, os.O_RDONLY) as fd:
        for offset in (len(whole) // 2, len(whole) - 1, len(whole), 3):
            assert os.lseek(fd, offset, os.SEEK_SET) == offset
            assert os.read(fd, 1 << 16).decode() == whole[offset:]


def test_views_stay_consistent_while_writers_run(log_since):
    """Writers trim and refill every device while readers parse both views: every device line
    must describe one consistent moment (its lock is held while it is read)."""
    stop = threading.Event()
    errors = []

    def writer(n):
        chunk = bytes([ord("a") + n]) * 65536
        try:
            while not stop.is_set():
                with opened(dev(n), os.O_WRONLY) as fd:
                    for _ in range(40):
                        os.write(fd, chunk)
        except OSError as err:
            errors.append(err)

    def reader(path):
        try:
            while not stop.is_set():
                rows = parse(read_view(path, chunk=97))
                for n in range(NR_DEVS):
                    check_device(rows[f"scull{n}"])
                if path == SCULLMEM:
                    check_totals(rows)
        except (AssertionError, OSError, ValueError) as err:
            errors.append(err)
            stop.set()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(NR_DEVS)]
    threads += [threading.Thread(target=reader, args=(path,)) for path in (SCULLMEM, SCULLSEQ)]
    for thread in threads:
        thread.start()
    time.sleep(6)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors[:3]


def test_scullctl_mem_shows_the_view():
    write_dev(dev(1), b"m" * 8000)
    assert scullctl("mem", "--raw").stdout == read_view(SCULLMEM)
    assert scullctl("mem", "--seq", "--raw").stdout == read_view(SCULLSEQ)
    table = scullctl("mem").stdout.splitlines()
    assert table[0].split() == ["device", "quantum", "qset", "size", "allocated", "qsets",
                                "quanta", "overhead"]
    scull1 = table[2].split()
    assert scull1[:4] == ["scull1", str(QUANTUM), str(QSET), "8000"]
    assert scull1[-1].endswith("x") and float(scull1[-1][:-1]) > 1
    assert table[-2].split()[:2] == ["total", "8000"]
    limit = parse(read_view(SCULLMEM))["total"]["limit"]
    assert table[-1].startswith(f"memory limit {limit} bytes, used ")


def test_views_go_away_with_the_module(scull_params):
    ensure_scull()
    script("scull_unload")
    assert not os.path.exists(SCULLMEM) and not os.path.exists(SCULLSEQ)
    script("scull_load")
    assert parse(read_view(SCULLMEM))["total"]["devices"] == NR_DEVS + len(GUARDED_DEVICES)
