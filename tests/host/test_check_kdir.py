"""scripts/check-kdir against broken kernel trees: each stops `make` before anything is
compiled, with one line that names the fix.

Runs on the host (`make test-host`), on fake KDIRs that hold only the files check-kdir reads:
the checks are about those files, and a fake tree takes milliseconds where a real one takes
minutes to build. scripts/debian-kernel runs the same checks on the real metadata."""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUSTC_TEXT = "rustc 1.85.1 (4eb161250 2025-03-15) (built from a source tarball)"
SYMBOLS = ["_RNvNtCsb5MLIFMWygY_6kernel5print11call_printk",
           "_RNvNtCs2lKf6AS60Zg_4core9panicking5panic"]
CONFIG = f"""CONFIG_CC_IS_GCC=y
CONFIG_RUST=y
CONFIG_RUSTC_VERSION_TEXT="{RUSTC_TEXT}"
CONFIG_RUST_OVERFLOW_CHECKS=y
# CONFIG_RUST_DEBUG_ASSERTIONS is not set
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def kdir(tmp_path):
    """A tree that passes every check, as scripts/debian-kernel leaves one (but for the
    build root: the rustc on PATH is a fake that prints RUSTC_TEXT)."""
    k = tmp_path / "kdir"
    write(str(k / ".config"), CONFIG)
    write(str(k / "scull-rs-kernel.config"), CONFIG)
    write(str(k / "include/generated/utsrelease.h"), '#define UTS_RELEASE "7.3.4+deb13-amd64"\n')
    write(str(k / "rust/libkernel.rmeta"), "")
    write(str(k / "rust/exports_kernel_generated.h"),
          "".join(f"EXPORT_SYMBOL_RUST_GPL({s});\n" for s in SYMBOLS))
    write(str(k / "Module.symvers"),
          "".join(f"0x00000000\t{s}\tvmlinux\tEXPORT_SYMBOL_GPL\t\n" for s in SYMBOLS))
    rustc = tmp_path / "bin" / "rustc"
    write(str(rustc), f"#!/bin/sh\necho '{RUSTC_TEXT}'\n")
    rustc.chmod(0o755)
    return k


def make_modules(kdir, tmp_path):
    """`make modules` against kdir, as a user runs it; returns (status, stderr lines)."""
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    before = set(os.listdir(REPO))
    r = subprocess.run(["make", "-s", "-C", REPO, f"KDIR={kdir}", "modules"], env=env,
                       capture_output=True, text=True)
    # Nothing was compiled: the repository holds no new file.
    assert set(os.listdir(REPO)) - before == set()
    return r.returncode, [line for line in r.stderr.splitlines() if line.startswith("check-kdir:")]


def refused(kdir, tmp_path, *expected):
    status, lines = make_modules(kdir, tmp_path)
    assert status != 0, "make went on to compile"
    assert len(lines) == 1, lines
    for text in expected:
        assert text in lines[0]
    return lines[0]


def test_a_sound_tree_passes_the_checks(kdir, tmp_path):
    env = dict(os.environ, KDIR=str(kdir), PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    r = subprocess.run([f"{REPO}/scripts/check-kdir"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_kernel_without_rust(kdir, tmp_path):
    write(str(kdir / ".config"), CONFIG.replace("CONFIG_RUST=y\n", "# CONFIG_RUST is not set\n"))
    refused(kdir, tmp_path, "without Rust", "CONFIG_RUST=y")


def test_another_rustc(kdir, tmp_path):
    write(str(tmp_path / "bin" / "rustc"), "#!/bin/sh\necho 'rustc 1.95.0 (59807616e 2026-04-14)'\n")
    refused(kdir, tmp_path, "rustc mismatch", RUSTC_TEXT, "rustc 1.95.0")


def test_headers_without_rust_metadata(kdir, tmp_path):
    os.remove(kdir / "rust" / "libkernel.rmeta")
    refused(kdir, tmp_path, "no Rust metadata", "scripts/debian-kernel")


def test_a_kernel_other_than_7_3(kdir, tmp_path):
    write(str(kdir / "include/generated/utsrelease.h"), '#define UTS_RELEASE "6.12.57+deb13-amd64"\n')
    refused(kdir, tmp_path, "Linux 6.12.57+deb13-amd64", "Linux 7.3")


@pytest.mark.parametrize("flip", [
    ("CONFIG_RUST_OVERFLOW_CHECKS=y", "# CONFIG_RUST_OVERFLOW_CHECKS is not set"),
    ("# CONFIG_RUST_DEBUG_ASSERTIONS is not set", "CONFIG_RUST_DEBUG_ASSERTIONS=y"),
])
def test_metadata_from_a_config_with_one_rust_option_flipped(kdir, tmp_path, flip):
    write(str(kdir / ".config"), CONFIG.replace(*flip))
    option = flip[0].split("=")[0].replace("# ", "").split(" ")[0]
    refused(kdir, tmp_path, "differs from the kernel's", option, "scripts/debian-kernel")


def test_metadata_whose_symbols_the_kernel_lacks(kdir, tmp_path):
    # Another compiler gives the crate another hash, so every name differs.
    write(str(kdir / "Module.symvers"), "0x00000000\t_RNvNtCsXXXXXXXXXXXX_6kernel5print11call_printk"
          "\tvmlinux\tEXPORT_SYMBOL_GPL\t\n")
    refused(kdir, tmp_path, "2 symbols", SYMBOLS[0], "absent from its Module.symvers")
