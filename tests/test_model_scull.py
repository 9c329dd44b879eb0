"""scull's memory devices against a model that predicts every result, errno and byte.

Hypothesis drives random sequences of calls on /dev/scull0 and /dev/scull1 through several
open files: opens in every access mode (write-only trims), pread/pwrite, read/write at the
file position, preadv/pwritev, lseek with every whence and invalid ones, the quantum/qset
ioctls followed by a trim, and reads and writes whose buffer runs into a page that cannot be
touched. Offsets favour the edges: quantum and quantum-set boundaries, the size, holes and
the device's size limit. After every step /proc/scullmem must show the size, quanta and
quantum sets the model predicts.
"""

import ctypes
import errno
import fcntl
import mmap
import os

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from helpers import (MAX_DEVICE_SIZE, MAX_QSETS, QSET, QUANTUM, SCULL_IOCQQSET,
                     SCULL_IOCQQUANTUM, SCULL_IOCRESET, SCULL_IOCTQSET, SCULL_IOCTQUANTUM, libc,
                     memory_view, raw_call)
from modelrun import ModelMachine, run_machine

DEVICES = ("/dev/scull0", "/dev/scull1")
MAX_QUANTUM, MAX_QSET = 16 << 20, 1 << 20
LLONG_MAX = (1 << 63) - 1
PAGE = mmap.PAGESIZE
PROT_NONE = 0                       # not in Python's mmap module


class Layout:
    def __init__(self, quantum, qset):
        self.quantum, self.qset = quantum, qset

    @property
    def qset_bytes(self):
        return self.quantum * self.qset

    @property
    def max_size(self):
        return min(self.qset_bytes * MAX_QSETS, MAX_DEVICE_SIZE)

    @staticmethod
    def valid(quantum, qset):
        return (1 <= quantum <= MAX_QUANTUM and 1 <= qset <= MAX_QSET
                and quantum * qset <= MAX_DEVICE_SIZE)


class Sparse:
    """A device's bytes: pages written so far, zeros elsewhere."""

    def __init__(self):
        self.pages = {}

    def read(self, pos, count):
        out = bytearray(count)
        done = 0
        while done < count:
            index, offset = divmod(pos + done, PAGE)
            n = min(count - done, PAGE - offset)
            page = self.pages.get(index)
            if page is not None:
                out[done:done + n] = page[offset:offset + n]
            done += n
        return bytes(out)

    def write(self, pos, data):
        done = 0
        while done < len(data):
            index, offset = divmod(pos + done, PAGE)
            n = min(len(data) - done, PAGE - offset)
            page = self.pages.setdefault(index, bytearray(PAGE))
            page[offset:offset + n] = data[done:done + n]
            done += n


class Device:
    """What the model knows of one scull device."""

    def __init__(self, layout):
        self.trim(layout)

    def trim(self, layout):
        self.layout = layout
        self.data = Sparse()
        self.size = 0
        self.quanta = set()             # global quantum numbers that hold data

    def predict_write(self, pos, count):
        """(bytes written, errno) for a write of `count` good bytes at `pos` (pos >= 0 and
        pos + count <= LLONG_MAX, as the VFS ensures)."""
        if count == 0:
            return 0, 0
        if pos >= self.layout.max_size:
            return 0, errno.EFBIG
        return min(count, self.layout.max_size - pos), 0

    def apply_write(self, pos, data):
        if not data:
            return
        self.data.write(pos, data)
        self.size = max(self.size, pos + len(data))
        q = self.layout.quantum
        self.quanta.update(range(pos // q, (pos + len(data) - 1) // q + 1))

    def predict_read(self, pos, count):
        """The bytes a read of `count` at `pos` returns."""
        n = max(0, min(count, self.size - pos))
        return self.data.read(pos, n)

    def usage(self):
        qset = self.layout.qset
        return {"quantum": self.layout.quantum, "qset": qset, "size": self.size,
                "quanta": len(self.quanta), "qsets": len({n // qset for n in self.quanta})}


class OpenFile:
    def __init__(self, fd, device, mode):
        self.fd, self.device, self.mode, self.pos = fd, device, mode, 0

    @property
    def readable(self):
        return self.mode != os.O_WRONLY

    @property
    def writable(self):
        return self.mode != os.O_RDONLY


class ScullMachine(ModelMachine):
    def __init__(self):
        super().__init__()
        self.files = []
        # Defaults restored and both devices emptied, whatever the last example left.
        fd = os.open(DEVICES[0], os.O_RDONLY)
        fcntl.ioctl(fd, SCULL_IOCRESET)
        os.close(fd)
        self.settings = Layout(QUANTUM, QSET)
        self.devices = []
        for path in DEVICES:
            os.close(os.open(path, os.O_WRONLY))
            self.devices.append(Device(self.settings))
        # Three pages, the middle one inaccessible: buffers that run into it fault midway.
        self.area = libc.mmap(None, 3 * PAGE, mmap.PROT_READ | mmap.PROT_WRITE,
                              mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        assert self.area not in (None, ctypes.c_void_p(-1).value)
        assert libc.mprotect(self.area + PAGE, PAGE, PROT_NONE) == 0

    def teardown(self):
        for f in self.files:
            os.close(f.fd)
        libc.munmap(self.area, 3 * PAGE)
        fd = os.open(DEVICES[0], os.O_RDONLY)
        fcntl.ioctl(fd, SCULL_IOCRESET)
        os.close(fd)
        for path in DEVICES:
            os.close(os.open(path, os.O_WRONLY))

    # Strategies that depend on the state.

    def offsets(self, data, device):
        layout = device.layout
        q, qb, size, top = layout.quantum, layout.qset_bytes, device.size, layout.max_size
        edges = [0, 1, q - 1, q, q + 1, 2 * q, qb - 1, qb, qb + 1, 3 * qb + q - 1,
                 size - 1, size, size + 1, size + q, top - q, top - 1, top, top + 1,
                 MAX_DEVICE_SIZE - 1, MAX_DEVICE_SIZE]
        edges = [e for e in edges if 0 <= e <= LLONG_MAX]
        return data.draw(st.one_of(st.sampled_from(edges),
                                   st.integers(0, max(0, min(4 * qb, 1 << 24)))))

    def lengths(self, data, device):
        q = device.layout.quantum
        small = [0, 1, 7, q - 1, q, q + 1, 2 * q + 1]
        return data.draw(st.one_of(st.sampled_from([n for n in small if 0 <= n <= 1 << 16]),
                                   st.integers(0, 3 * PAGE)))

    def payload(self, data, length):
        seed = data.draw(st.integers(0, 255))
        return bytes((seed + i * 7) % 251 for i in range(length))

    def check_rw_errno(self, f, pos, count, write):
        """The errno the VFS gives before the driver sees the call, or 0."""
        if (write and not f.writable) or (not write and not f.readable):
            return errno.EBADF
        if pos < 0 or pos + count > LLONG_MAX:
            return errno.EINVAL
        return 0

    # Rules.

    @precondition(lambda self: len(self.files) < 6)
    @rule(index=st.integers(0, len(DEVICES) - 1),
          mode=st.sampled_from([os.O_RDONLY, os.O_WRONLY, os.O_RDWR]))
    def open_file(self, index, mode):
        fd = os.open(DEVICES[index], mode)
        device = self.devices[index]
        if mode == os.O_WRONLY:
            device.trim(self.settings)
        self.files.append(OpenFile(fd, device, mode))

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def close_file(self, data):
        f = self.files.pop(data.draw(st.integers(0, len(self.files) - 1)))
        os.close(f.fd)

    @precondition(lambda self: self.files)
    @rule(data=st.data(), vectored=st.booleans())
    def pwrite(self, data, vectored):
        f = data.draw(st.sampled_from(self.files))
        pos, count = self.offsets(data, f.device), self.lengths(data, f.device)
        payload = self.payload(data, count)
        expected_err = self.check_rw_errno(f, pos, count, write=True)
        expected, device_err = f.device.predict_write(pos, count)
        try:
            if vectored:
                cut = data.draw(st.integers(0, count))
                n = os.pwritev(f.fd, [payload[:cut], payload[cut:]], pos)
            else:
                n = os.pwrite(f.fd, payload, pos)
            err = 0
        except OSError as e:
            n, err = None, e.errno
        if expected_err:
            assert err == expected_err, (pos, count, n, err)
            return
        if device_err:
            assert err == device_err, (pos, count, n, err)
            return
        assert (n, err) == (expected, 0), (pos, count)
        f.device.apply_write(pos, payload[:n])

    @precondition(lambda self: self.files)
    @rule(data=st.data(), vectored=st.booleans())
    def pread(self, data, vectored):
        f = data.draw(st.sampled_from(self.files))
        pos, count = self.offsets(data, f.device), self.lengths(data, f.device)
        expected_err = self.check_rw_errno(f, pos, count, write=False)
        try:
            if vectored:
                cut = data.draw(st.integers(0, count))
                buffers = [bytearray(cut), bytearray(count - cut)]
                n = os.preadv(f.fd, buffers, pos)
                got = bytes(b"".join(buffers)[:n])
            else:
                got = os.pread(f.fd, count, pos)
            err = 0
        except OSError as e:
            got, err = None, e.errno
        if expected_err:
            assert err == expected_err, (pos, count, err)
            return
        assert err == 0, (pos, count, err)
        assert got == f.device.predict_read(pos, count), (pos, count, len(got))

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def write_at_position(self, data):
        f = data.draw(st.sampled_from(self.files))
        count = self.lengths(data, f.device)
        payload = self.payload(data, count)
        expected_err = self.check_rw_errno(f, f.pos, count, write=True)
        expected, device_err = f.device.predict_write(f.pos, count)
        try:
            n, err = os.write(f.fd, payload), 0
        except OSError as e:
            n, err = None, e.errno
        if expected_err or device_err:
            assert err == (expected_err or device_err), (f.pos, count, n, err)
            return
        assert (n, err) == (expected, 0), (f.pos, count)
        f.device.apply_write(f.pos, payload[:n])
        f.pos += n

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def read_at_position(self, data):
        f = data.draw(st.sampled_from(self.files))
        count = self.lengths(data, f.device)
        expected_err = self.check_rw_errno(f, f.pos, count, write=False)
        try:
            got, err = os.read(f.fd, count), 0
        except OSError as e:
            got, err = None, e.errno
        if expected_err:
            assert err == expected_err, (f.pos, count, err)
            return
        assert err == 0
        assert got == f.device.predict_read(f.pos, count), (f.pos, count, len(got))
        f.pos += len(got)

    @precondition(lambda self: self.files)
    @rule(data=st.data(),
          whence=st.sampled_from([os.SEEK_SET, os.SEEK_CUR, os.SEEK_END, 3, 4, 5, -1]))
    def lseek(self, data, whence):
        f = data.draw(st.sampled_from(self.files))
        offset = data.draw(st.one_of(
            st.sampled_from([0, 1, -1, f.device.layout.quantum, -f.pos, -f.device.size,
                             -f.device.size - 1, LLONG_MAX, -LLONG_MAX - 1]),
            st.integers(-(1 << 20), 1 << 20)))
        try:
            got, err = os.lseek(f.fd, offset, whence), 0
        except OSError as e:
            got, err = None, e.errno
        base = {os.SEEK_SET: 0, os.SEEK_CUR: f.pos, os.SEEK_END: f.device.size}.get(whence)
        if base is None or not 0 <= base + offset <= LLONG_MAX:
            assert err == errno.EINVAL, (whence, offset, got)
            return
        assert (got, err) == (base + offset, 0), (whence, offset)
        f.pos = got

    @precondition(lambda self: self.files)
    @rule(data=st.data(), write=st.booleans(),
          start=st.sampled_from([0, 1, PAGE // 2, PAGE - 1, PAGE, PAGE + 7]),
          length=st.sampled_from([1, 2, PAGE // 2, PAGE, PAGE + 1, 2 * PAGE]))
    def through_a_hole_in_the_buffer(self, data, write, start, length):
        """The buffer runs into (or starts in) a page that cannot be touched: what comes
        before it moves, the call returns that count, or EFAULT when nothing moved."""
        f = data.draw(st.sampled_from(self.files))
        pos = self.offsets(data, f.device)
        address = self.area + start
        good = max(0, min(length, PAGE - start)) if start < PAGE else 0
        expected_err = self.check_rw_errno(f, pos, length, write)
        if write:
            payload = self.payload(data, good)
            ctypes.memmove(address, payload, good)
            n, err = raw_call(libc.pwrite, f.fd, address, length, pos)
        else:
            n, err = raw_call(libc.pread, f.fd, address, length, pos)
        if expected_err:
            assert (n, err) == (-1, expected_err), (pos, start, length)
            return
        if write:
            expected, device_err = f.device.predict_write(pos, length)
            expected = min(expected, good)
            if device_err or expected == 0:
                assert (n, err) == (-1, device_err or errno.EFAULT), (pos, start, length)
                return
            assert (n, err) == (expected, 0), (pos, start, length)
            f.device.apply_write(pos, payload[:n])
        else:
            wanted = f.device.predict_read(pos, length)
            if len(wanted) == 0:
                assert (n, err) == (0, 0), (pos, start, length)
            elif good == 0:
                assert (n, err) == (-1, errno.EFAULT), (pos, start, length)
            else:
                assert (n, err) == (min(len(wanted), good), 0), (pos, start, length)
                assert ctypes.string_at(address, n) == wanted[:n]

    @precondition(lambda self: self.files)
    @rule(data=st.data(), which=st.sampled_from(["quantum", "qset"]),
          value=st.sampled_from([1, 2, 3, 7, 4000, 4096, 1000, MAX_QUANTUM, MAX_QSET,
                                 MAX_QUANTUM + 1, MAX_QSET + 1, 0, -1]))
    def change_layout(self, data, which, value):
        """Root changes a setting (T: from the argument) and reads it back (Q); it applies
        from the next trim."""
        f = data.draw(st.sampled_from(self.files))
        quantum, qset = self.settings.quantum, self.settings.qset
        if which == "quantum":
            quantum = value
        else:
            qset = value
        cmd = SCULL_IOCTQUANTUM if which == "quantum" else SCULL_IOCTQSET
        n, err = raw_call(libc.ioctl, f.fd, cmd, value & (2**64 - 1))
        if Layout.valid(quantum, qset):
            assert (n, err) == (0, 0), (which, value)
            self.settings = Layout(quantum, qset)
        else:
            assert (n, err) == (-1, errno.EINVAL), (which, value)
        assert fcntl.ioctl(f.fd, SCULL_IOCQQUANTUM) == self.settings.quantum
        assert fcntl.ioctl(f.fd, SCULL_IOCQQSET) == self.settings.qset

    @rule()
    def reset_layout(self):
        fd = os.open(DEVICES[0], os.O_RDONLY)
        fcntl.ioctl(fd, SCULL_IOCRESET)
        os.close(fd)
        self.settings = Layout(QUANTUM, QSET)

    @invariant()
    def proc_shows_what_the_model_holds(self):
        rows = memory_view()
        for index, device in enumerate(self.devices):
            row = rows[f"scull{index}"]
            usage = device.usage()
            assert {k: row[k] for k in usage} == usage, (index, row)
            # The quanta and the quantum sets' slot arrays are the least they cost.
            floor = usage["quanta"] * usage["quantum"] + usage["qsets"] * usage["qset"] * 24
            assert row["allocated"] >= floor, row


@pytest.mark.timeout(1200)
def test_scull_devices_match_their_model(capsys):
    run_machine(ScullMachine, examples=30, steps=40, capsys=capsys)
