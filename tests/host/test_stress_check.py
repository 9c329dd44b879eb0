"""The stress test's verdict, on device contents made by hand: whole chunks in their places
pass, and torn, misplaced, foreign or missing data each fail with their own reason."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import multithread_write  # noqa: E402

CHUNK = 64
THREADS = 3
SIZE = 5 * CHUNK + 20               # a short last chunk, as --size-mib allows


def contents(digits):
    """Whole chunks, the one at each offset written by the writer of `digits[k]`."""
    return "".join(multithread_write.chunk_text(digit, at, min(CHUNK, SIZE - at))
                   for digit, at in zip(digits, range(0, SIZE, CHUNK))).encode()


def verdict(tmp_path, data):
    device = tmp_path / "device"
    device.write_bytes(data)
    return multithread_write.check(str(device), THREADS, SIZE, CHUNK)


def test_whole_chunks_in_place_pass(tmp_path):
    assert verdict(tmp_path, contents([0, 2, 1, 1, 0, 2])) is None


def torn(data):
    """The second chunk's last half from another writer."""
    body = bytearray(data)
    body[CHUNK + CHUNK // 2:2 * CHUNK] = b"2" * (CHUNK // 2)
    return bytes(body)


def shifted(data):
    """Everything from the second chunk on one byte early, as a write at a wrong position
    leaves it."""
    return data[:CHUNK] + data[CHUNK + 1:] + data[-1:]


@pytest.mark.parametrize("damage, reason", [
    (torn, "mixes writers' digits"),
    (shifted, "misplaced data"),
    (lambda data: data[:100] + b"\0" + data[101:], "no writer's digit"),
    (lambda data: data[:-1], "expected"),
], ids=["torn", "shifted", "hole", "short"])
def test_damage_is_reported(tmp_path, damage, reason):
    data = contents([0, 1, 1, 1, 0, 2])
    found = verdict(tmp_path, damage(data))
    assert found is not None and reason in found, found
