"""The benchmark's code, run tiny on the test kernel: `make bench` must keep working. The
figures of a tiny run on a debug kernel mean nothing and are not checked, only their shape."""

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO, pipe_buffer_setting

BENCH_FIGURES = (
    [f"seq.{rw}.{bs}.{side}" for rw in ("write", "read") for bs in (4000, 65536, 1048576)
     for side in ("scull", "tmpfs")]
    + [f"offset.{rw}.{offset}.scull" for rw in ("write", "read") for offset in (0, 1 << 30)]
    + ["stress.seconds.scull", "stress.seconds.tmpfs"]
    + [f"writers.{n}.{where}" for n in (1, 2, 4) for where in ("one_device", "own_device")]
    + [f"pipe.{buffer}.{bs}.{side}" for buffer, bs in ((65536, 4000), (65536, 65536), (4096, 4000))
       for side in ("scullpipe", "pipe")]
    + ["pingpong.seconds.scullpipe", "pingpong.seconds.pipe"])


@pytest.mark.timeout(900)
def test_tiny_bench_measures_everything_and_reports_it(tmp_path):
    result = tmp_path / "bench.json"
    pipe_buffer_before = pipe_buffer_setting()
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench-guest"), "--tiny",
                    "--json", str(result), "--tmpfs", str(tmp_path / "tmpfs")], check=True)
    data = json.loads(result.read_text())
    assert data["tiny"] is True
    assert sorted(data["figures"]) == sorted(BENCH_FIGURES)
    assert all(value > 0 for value in data["figures"].values())
    # The devices are left empty, and the tmpfs unmounted.
    assert open("/proc/scullmem").read().splitlines()[-1].split()[2] == "size=0"
    assert not os.path.ismount(tmp_path / "tmpfs")
    # The pipes' buffer size, which the pipe runs change, is put back.
    assert pipe_buffer_setting() == pipe_buffer_before

    png, md = tmp_path / "bench.png", tmp_path / "bench.md"
    report = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench-report"),
                             str(result), "--png", str(png), "--markdown", str(md)],
                            capture_output=True, text=True, check=True)
    assert "TINY RUN" in report.stdout
    assert report.stdout.count("\n") == 19   # the title, the header and 17 rows
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert md.read_text().count("\n| ") == 19   # the header, its rule and 17 rows
