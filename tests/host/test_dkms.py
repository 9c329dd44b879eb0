"""DKMS builds and installs scull-rs for Debian's 7.3.4+deb13-amd64, inside the Debian 13
build root that scripts/debian-kernel made: `dkms.conf` must build the Rust metadata for the
kernel it targets (here found already built, at the same path) and then both modules.

Runs on the host (`make test-host`), as root: dkms installs into the root's /usr/src and
/lib/modules, never the host's. Where the host is Debian 13 itself there is no build root,
and the test is skipped rather than install into the host."""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("SCULL_CACHE", os.path.expanduser("~/.cache/scull-rs"))
ROOT = os.environ.get("SCULL_DEBIAN_ROOT", os.path.join(CACHE, "debian13-root"))
RELEASE = os.environ.get("SCULL_DEBIAN_KERNEL_RELEASE", "7.3.4+deb13-amd64")
VERSION = "0.1"


def in_root(script, check=True):
    env = dict(os.environ, SCULL_CACHE=CACHE)
    r = subprocess.run([f"{REPO}/scripts/in-root", "--as-root", ROOT, "sh", "-ec", script],
                       env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        pytest.fail(f"in the build root, {script!r} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture
def source(tmp_path):
    if not os.path.exists(os.path.join(ROOT, "etc/scull-rs-build-root")):
        if os.path.exists("/etc/debian_version") and open("/etc/debian_version").read().startswith("13"):
            pytest.skip("this host is Debian 13: no build root to try DKMS in")
        pytest.fail(f"no Debian 13 build root in {ROOT}: run scripts/setup")
    # What DKMS gets is what git tracks: no build output of this checkout comes along.
    tar = tmp_path / "src.tar"
    files = subprocess.run(["git", "-C", REPO, "ls-files", "-z"], check=True,
                           capture_output=True).stdout
    subprocess.run(["tar", "-C", REPO, "--null", "-T", "-", "-cf", str(tar)], input=files,
                   check=True)
    dest = f"/usr/src/scull-rs-{VERSION}"
    in_root(f"dkms remove -m scull-rs -v {VERSION} --all >/dev/null 2>&1 || true; "
            f"rm -rf {dest}; mkdir -p {dest}; tar -xf {tar} -C {dest}")
    yield
    in_root(f"dkms remove -m scull-rs -v {VERSION} --all >/dev/null 2>&1 || true; rm -rf {dest}",
            check=False)


@pytest.mark.timeout(900)
def test_dkms_builds_and_installs_both_modules_for_debians_kernel(source):
    in_root(f"dkms add -m scull-rs -v {VERSION}")
    built = in_root(f"dkms build -m scull-rs -v {VERSION} -k {RELEASE}")
    assert "Building module" in built.stdout + built.stderr or "Building module(s)" in built.stdout
    in_root(f"dkms install -m scull-rs -v {VERSION} -k {RELEASE}")
    status = in_root(f"dkms status -m scull-rs -v {VERSION} -k {RELEASE}").stdout
    assert "installed" in status, status
    for module in ("scull", "complete"):
        # Where DKMS installs for that kernel; its vermagic must name it, and DKMS signed it
        # with its own key (what `mokutil --import` enrolls for Secure Boot).
        path = f"/lib/modules/{RELEASE}/updates/dkms/{module}.ko"
        info = in_root(f"modinfo -F vermagic {path}").stdout
        assert info.split()[0] == RELEASE, info
        assert in_root(f"modinfo -F signer {path}").stdout.strip(), f"{path} is not signed"
