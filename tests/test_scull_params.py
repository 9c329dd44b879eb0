"""scull's module parameters: honoured when sane, refused with EINVAL when not."""

import grp
import os
import stat
import subprocess

import pytest

from helpers import dev, ensure_scull, new_log, opened, read_dev, script, write_dev


def proc_devices_major(name="scull"):
    with open("/proc/devices") as f:
        majors = [line.split()[0] for line in f if line.split()[1:] == [name]]
    assert len(majors) <= 1
    return int(majors[0]) if majors else None


def test_default_load_creates_four_nodes_on_one_dynamic_major():
    major = proc_devices_major()
    assert major is not None
    for n in range(4):
        st = os.stat(dev(n))
        assert stat.S_ISCHR(st.st_mode)
        assert os.major(st.st_rdev) == major
        assert os.minor(st.st_rdev) == n
        assert stat.S_IMODE(st.st_mode) == 0o664
        assert grp.getgrgid(st.st_gid).gr_name in ("staff", "wheel")
    assert not os.path.exists(dev(4))


def test_tiny_quantum_and_qset(scull_params):
    scull_params("scull_quantum=1", "scull_qset=1")
    data = os.urandom(10000)
    write_dev(dev(0), data, 333)
    assert read_dev(dev(0), 777) == data
    # With one byte per quantum and one quantum per set, 2**20 sets bound the device.
    with opened(dev(0), os.O_RDWR) as fd:
        assert os.pwrite(fd, b"ab", (1 << 20) - 1) == 1
        with pytest.raises(OSError):
            os.pwrite(fd, b"c", 1 << 20)


def test_other_device_count_and_first_minor(scull_params):
    scull_params("scull_nr_devs=2", "scull_minor=5")
    assert os.path.exists(dev(0)) and os.path.exists(dev(1))
    assert not os.path.exists(dev(2))
    assert os.minor(os.stat(dev(1)).st_rdev) == 6
    write_dev(dev(1), b"minor six")
    assert read_dev(dev(1)) == b"minor six"


def char_majors():
    """The majors of /proc/devices' character devices."""
    with open("/proc/devices") as f:
        text = f.read()
    chars = text.split("Character devices:")[1].split("Block devices:")[0]
    return {int(line.split()[0]) for line in chars.splitlines() if line.strip()}


# Majors that devices.txt reserves for local or experimental use: the kernel never hands them
# out dynamically (it takes 234..254, then 384..511), so getting one proves the parameter was
# honoured.
LOCAL_MAJORS = [*range(60, 64), *range(120, 128)]


def test_fixed_major(scull_params):
    free = next(m for m in LOCAL_MAJORS if m not in char_majors())
    scull_params(f"scull_major={free}")
    assert proc_devices_major() == free
    for path in [dev(n) for n in range(4)] + ["/dev/scullpipe0", "/dev/scullpriv"]:
        assert os.major(os.stat(path).st_rdev) == free, path
    write_dev(dev(3), b"static")
    assert read_dev(dev(3)) == b"static"


@pytest.mark.parametrize("param, needle", [
    ("scull_quantum=0", "scull_quantum=0"),
    ("scull_quantum=-1", "scull_quantum=-1"),
    ("scull_quantum=2000000000", "scull_quantum=2000000000"),
    ("scull_qset=0", "scull_qset=0"),
    ("scull_qset=2000000000", "scull_qset=2000000000"),
    ("scull_nr_devs=0", "scull_nr_devs=0"),
    ("scull_nr_devs=100000", "scull_nr_devs=100000"),
    ("scull_minor=-5", "scull_minor=-5"),
    ("scull_major=4096", "scull_major=4096"),
    ("scull_p_nr_devs=0", "scull_p_nr_devs=0"),
    ("scull_p_nr_devs=65", "scull_p_nr_devs=65"),
    ("scull_p_buffer=0", "scull_p_buffer=0"),
    ("scull_p_buffer=2000000", "scull_p_buffer=2000000"),
    ("scull_minor=1048570", "scull_minor=1048570"),
])
def test_nonsense_parameters_fail_the_load_with_einval(scull_unloaded, log_since, param, needle):
    result = subprocess.run(["insmod", os.path.join(os.path.dirname(__file__), "..", "scull.ko"),
                             param], capture_output=True, text=True)
    assert result.returncode != 0
    assert "Invalid argument" in result.stderr or "Invalid parameters" in result.stderr
    assert needle in new_log(log_since)
    # scull_load reports the failure too, with a non-zero status.
    failed = script("scull_load", param, check=False)
    assert failed.returncode != 0 and "insmod" in failed.stderr
    assert subprocess.run(["grep", "-q", "^scull ", "/proc/modules"]).returncode != 0


def test_pipe_count_and_buffer_size(scull_params):
    scull_params("scull_nr_devs=2", "scull_p_nr_devs=2", "scull_p_buffer=10")
    assert os.path.exists("/dev/scullpipe1") and not os.path.exists("/dev/scullpipe2")
    # Minors: scull 0-1, pipes 2-3, then the access devices.
    assert os.minor(os.stat("/dev/scullpipe0").st_rdev) == 2
    assert os.minor(os.stat("/dev/scullpriv").st_rdev) == 7
    with opened("/dev/scullpipe1", os.O_RDWR | os.O_NONBLOCK) as fd:
        assert os.write(fd, b"x" * 100) == 10
        assert os.read(fd, 100) == b"x" * 10


def test_unload_removes_every_node_and_link(scull_params):
    ensure_scull()
    script("scull_unload")
    leftovers = [name for name in os.listdir("/dev") if name.startswith("scull")]
    assert leftovers == []
    script("scull_load")


def test_quantum_times_qset_overflow_is_refused(scull_unloaded, log_since):
    failed = script("scull_load", "scull_quantum=16000000", "scull_qset=1000000", check=False)
    assert failed.returncode != 0
    assert "scull_quantum=16000000 * scull_qset=1000000" in new_log(log_since)


def test_module_cannot_be_removed_while_a_device_is_open():
    with opened(dev(0), os.O_RDONLY):
        result = subprocess.run(["rmmod", "scull"], capture_output=True, text=True)
        assert result.returncode != 0
        assert "in use" in result.stderr


def test_load_script_reads_numbers_as_the_kernel_does(scull_params):
    """010 is octal (8 devices) and 0x2 hex for the kernel: the nodes must agree with it,
    each on the minor the module serves."""
    scull_params("scull_nr_devs=010", "scull_p_nr_devs=0x2", "scull_minor=0x10")
    assert os.path.exists(dev(7)) and not os.path.exists(dev(8))
    assert not os.path.exists(dev(9))
    assert os.path.exists("/dev/scullpipe1") and not os.path.exists("/dev/scullpipe2")
    # Minors from 16: scull 16-23, pipes 24-25, then single, uid, wuid, priv.
    assert os.minor(os.stat(dev(0)).st_rdev) == 16
    assert os.minor(os.stat("/dev/scullpipe0").st_rdev) == 24
    assert os.minor(os.stat("/dev/scullpriv").st_rdev) == 29
    write_dev(dev(7), b"eight devices")
    assert read_dev(dev(7)) == b"eight devices"
    with opened("/dev/scullpipe1", os.O_RDWR | os.O_NONBLOCK) as fd:
        assert os.write(fd, b"pipe") == 4 and os.read(fd, 10) == b"pipe"


@pytest.mark.parametrize("value", ["08", "0x", "ten", "4k"])
def test_load_script_refuses_numbers_it_cannot_read(scull_unloaded, value):
    failed = script("scull_load", f"scull_nr_devs={value}", check=False)
    assert failed.returncode != 0
    assert f"scull_nr_devs={value}: not a number the kernel reads" in failed.stderr
    assert not os.path.exists(dev(0))
    with open("/proc/modules") as f:
        assert not any(line.startswith("scull ") for line in f)
