"""scull's memory devices against a model that predicts every result, errno and byte.

Hypothesis drives random sequences of calls on /dev/scull0 and /dev/scull1 through several
open files: opens in every access mode (write-only trims), pread/pwrite, read/write at the
file position, preadv/pwritev, lseek with every whence and invalid ones, the quantum/qset
ioctls followed by a trim, and reads and writes whose buffer runs into a page that cannot be
touched. Offsets favour the edges: quantum and quantum-set boundaries, the size, holes and
the device's size limit. After every step /proc/scullmem must show the size, quanta and
quantum sets the model predicts, and exactly the memory it predicts they hold: every device's
`allocated`, and the budget's `used`.

A second run loads scull with a small `scull_mem_limit`, so that writes end short or with
ENOSPC where the model says the budget runs out, and every ioctl (S, T, G, Q, X, H, the pipe
size and RESET) is modelled, with the rule that a new layout applies from the next trim.
"""

import ctypes
import errno
import fcntl
import mmap
import os

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from helpers import (MAX_DEVICE_SIZE, MAX_QSETS, PIPE_BUFFER, QSET, QUANTUM, SCULL_IOCGQSET,
                     SCULL_IOCGQUANTUM, SCULL_IOCHQSET, SCULL_IOCHQUANTUM, SCULL_IOCQQSET,
                     SCULL_IOCQQUANTUM, SCULL_IOCRESET, SCULL_IOCSQSET, SCULL_IOCSQUANTUM,
                     SCULL_IOCTQSET, SCULL_IOCTQUANTUM, SCULL_IOCXQSET, SCULL_IOCXQUANTUM,
                     SCULL_P_IOCQSIZE, SCULL_P_IOCTSIZE, libc, memory_view, raw_call)
from modelrun import ModelMachine, run_machine

DEVICES = ("/dev/scull0", "/dev/scull1")
MAX_QUANTUM, MAX_QSET = 16 << 20, 1 << 20
LLONG_MAX = (1 << 63) - 1
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
MAX_PIPE_BUFFER = 1 << 20
PAGE = mmap.PAGESIZE
# Bytes of one slot of a quantum set's array (a quantum's pointer, length and capacity), and
# of one slot of the array of quantum sets: what /proc/scullmem's `allocated` counts them at.
SLOT = 24
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
    """What the model knows of one scull device, down to the memory it holds."""

    def __init__(self, layout):
        self.trim(layout)

    def trim(self, layout):
        self.layout = layout
        self.data = Sparse()
        self.size = 0
        self.quanta = set()             # global quantum numbers that hold data
        self.qsets = set()              # quantum sets allocated
        self.length = 0                 # slots in the array of quantum sets
        self.capacity = 0               # slots that array has room for

    def allocated(self):
        q, qset = self.layout.quantum, self.layout.qset
        return (len(self.quanta) * q + len(self.qsets) * qset * SLOT
                + self.capacity * SLOT)

    def write(self, pos, payload, count, free):
        """Writes `count` bytes at `pos` (pos >= 0 and pos + count <= LLONG_MAX, as the VFS
        ensures), of which only `payload`, a prefix, can be read from user memory. `free()`
        is what the budget has left. Returns (bytes written, errno) and applies the write.

        Step by step as the driver goes, one piece per quantum: grow the array of quantum
        sets (to at least twice its capacity), allocate the quantum set, then the quantum,
        each charged before it is allocated. A piece that writes nothing (ENOSPC, or the
        first byte unreadable) ends the write and gives back what that piece allocated, and
        the array capacity the write added beyond what is still needed."""
        self.out_of_budget = False
        if count == 0:
            return 0, 0
        if pos >= self.layout.max_size:
            return 0, errno.EFBIG
        count = min(count, self.layout.max_size - pos)
        q, qset = self.layout.quantum, self.layout.qset
        capacity_before = self.capacity
        done, failure = 0, errno.EFAULT
        while done < count:
            number, offset = divmod(pos + done, q)
            index = number // qset
            want = min(count - done, q - offset)
            readable = max(0, min(want, len(payload) - done))
            filled = 0
            if index >= self.length and self.capacity < index + 1:
                grown = max(2 * self.capacity, index + 1)
                if (grown - self.capacity) * SLOT > free():
                    failure = errno.ENOSPC
                else:
                    self.capacity = grown
            if failure != errno.ENOSPC:
                self.length = max(self.length, index + 1)
                if index not in self.qsets:
                    if qset * SLOT > free():
                        failure = errno.ENOSPC
                    else:
                        self.qsets.add(index)
            if failure != errno.ENOSPC:
                if number in self.quanta:
                    filled = readable
                elif q > free():
                    failure = errno.ENOSPC
                elif readable:
                    filled = readable
                    self.quanta.add(number)
            if filled == 0:
                self.out_of_budget = failure == errno.ENOSPC
                self.release_unused(index, capacity_before)
                break
            self.data.write(pos + done, payload[done:done + filled])
            done += filled
            self.size = max(self.size, pos + done)
            if filled < want:
                break
        return (done, 0) if done else (0, failure)

    def release_unused(self, index, capacity_before):
        qset = self.layout.qset
        if index in self.qsets and not any(n // qset == index for n in self.quanta):
            self.qsets.discard(index)
        while self.length and self.length - 1 not in self.qsets:
            self.length -= 1
        self.capacity = min(self.capacity, max(self.length, capacity_before))

    def predict_read(self, pos, count):
        """The bytes a read of `count` at `pos` returns."""
        n = max(0, min(count, self.size - pos))
        return self.data.read(pos, n)

    def usage(self):
        return {"quantum": self.layout.quantum, "qset": self.layout.qset, "size": self.size,
                "quanta": len(self.quanta), "qsets": len(self.qsets),
                "allocated": self.allocated()}


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
        self.pipe_buffer = PIPE_BUFFER
        fd = os.open(DEVICES[0], os.O_RDONLY)
        assert raw_call(libc.ioctl, fd, SCULL_P_IOCTSIZE, PIPE_BUFFER) == (0, 0)
        os.close(fd)
        self.devices = []
        for path in DEVICES:
            os.close(os.open(path, os.O_WRONLY))
            self.devices.append(Device(self.settings))
        # What the budget allows, and what the other devices hold: they stay as they are.
        totals = memory_view()["total"]
        self.limit, self.others = totals["limit"], totals["used"]
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
        assert raw_call(libc.ioctl, fd, SCULL_P_IOCTSIZE, PIPE_BUFFER) == (0, 0)
        os.close(fd)
        for path in DEVICES:
            os.close(os.open(path, os.O_WRONLY))

    def free(self):
        """What the budget has left, as the model counts it."""
        return self.limit - self.others - sum(d.allocated() for d in self.devices)

    def write(self, device, pos, payload, count):
        """The model's (bytes written, errno) for a write, applied to `device`; counts the
        writes that the memory limit cut short or refused."""
        n, err = device.write(pos, payload, count, self.free)
        if device.out_of_budget:
            self.saw("short at the limit" if n else "ENOSPC")
        return n, err

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
        # Up to 16 quanta: writes that cross several, so that some run into the memory limit
        # part way.
        small = [0, 1, 7, q - 1, q, q + 1, 2 * q + 1, 5 * q + 3, 16 * q]
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
        try:
            if vectored:
                cut = data.draw(st.integers(0, count))
                n = os.pwritev(f.fd, [payload[:cut], payload[cut:]], pos)
            else:
                n = os.pwrite(f.fd, payload, pos)
            err = 0
        except OSError as e:
            n, err = 0, e.errno
        if expected_err:
            assert err == expected_err, (pos, count, n, err)
            return
        expected = self.write(f.device, pos, payload, count)
        assert (n, err) == expected, (pos, count)

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
        try:
            n, err = os.write(f.fd, payload), 0
        except OSError as e:
            n, err = 0, e.errno
        if expected_err:
            assert err == expected_err, (f.pos, count, n, err)
            return
        expected = self.write(f.device, f.pos, payload, count)
        assert (n, err) == expected, (f.pos, count)
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
            expected, device_err = self.write(f.device, pos, payload, length)
            if device_err:
                assert (n, err) == (-1, device_err), (pos, start, length)
                return
            assert (n, err) == (expected, 0), (pos, start, length)
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
    @rule(data=st.data(), op=st.sampled_from("STHGQX"),
          which=st.sampled_from(["quantum", "qset"]),
          value=st.sampled_from([1, 2, 3, 7, 4000, 4096, 1000, MAX_QUANTUM, MAX_QSET,
                                 MAX_QUANTUM + 1, MAX_QSET + 1, 0, -1, INT_MAX, INT_MIN,
                                 INT_MAX + 1]),
          bad_pointer=st.booleans())
    def layout_ioctl(self, data, op, which, value, bad_pointer):
        """Root sets a setting (S: through a pointer, T: from the argument), exchanges it (X:
        through a pointer, H: from the argument, returning the old value), or reads it (G:
        through a pointer, Q: returned). A new layout applies from the next trim; a pointer
        into a page that cannot be touched gives EFAULT and changes nothing."""
        f = data.draw(st.sampled_from(self.files))
        old = getattr(self.settings, which)
        quantum, qset = self.settings.quantum, self.settings.qset
        if which == "quantum":
            quantum = value
        else:
            qset = value
        fits_int = INT_MIN <= value <= INT_MAX
        valid = fits_int and Layout.valid(quantum, qset)
        cmd = {("S", "quantum"): SCULL_IOCSQUANTUM, ("S", "qset"): SCULL_IOCSQSET,
               ("T", "quantum"): SCULL_IOCTQUANTUM, ("T", "qset"): SCULL_IOCTQSET,
               ("H", "quantum"): SCULL_IOCHQUANTUM, ("H", "qset"): SCULL_IOCHQSET,
               ("G", "quantum"): SCULL_IOCGQUANTUM, ("G", "qset"): SCULL_IOCGQSET,
               ("Q", "quantum"): SCULL_IOCQQUANTUM, ("Q", "qset"): SCULL_IOCQQSET,
               ("X", "quantum"): SCULL_IOCXQUANTUM, ("X", "qset"): SCULL_IOCXQSET}[op, which]
        # What S and X read: a C int, so only values that fit one.
        box = ctypes.c_int(value if fits_int else 0)
        pointer = self.area + PAGE if bad_pointer else ctypes.addressof(box)
        if op in "TH":
            n, err = raw_call(libc.ioctl, f.fd, cmd, value & (2**64 - 1))
        elif op == "Q":
            n, err = raw_call(libc.ioctl, f.fd, cmd, 0)
        else:
            if op in "SX" and not fits_int:
                return
            n, err = raw_call(libc.ioctl, f.fd, cmd, pointer)
        if op == "Q":
            expected = (old, 0)
        elif op == "G":
            expected = (-1, errno.EFAULT) if bad_pointer else (0, 0)
        elif op in "SX" and bad_pointer:
            expected = (-1, errno.EFAULT)
        elif not valid:
            expected = (-1, errno.EINVAL)
        else:
            expected = (old, 0) if op == "H" else (0, 0)
            self.settings = Layout(quantum, qset)
        assert (n, err) == expected, (op, which, value, bad_pointer)
        if op in "GX" and not bad_pointer and expected == (0, 0):
            assert box.value == old, (op, which, value)
        assert fcntl.ioctl(f.fd, SCULL_IOCQQUANTUM) == self.settings.quantum
        assert fcntl.ioctl(f.fd, SCULL_IOCQQSET) == self.settings.qset

    @precondition(lambda self: self.files)
    @rule(data=st.data(),
          size=st.sampled_from([1, 4000, PIPE_BUFFER, MAX_PIPE_BUFFER, MAX_PIPE_BUFFER + 1, 0,
                                -1, INT_MAX + 1]))
    def pipe_size_ioctl(self, data, size):
        """LDD3's scullpipe ioctls answer on every scull device: P_IOCTSIZE sets the size the
        pipes' buffers take at their next allocation, P_IOCQSIZE returns it."""
        f = data.draw(st.sampled_from(self.files))
        n, err = raw_call(libc.ioctl, f.fd, SCULL_P_IOCTSIZE, size & (2**64 - 1))
        if 1 <= size <= MAX_PIPE_BUFFER:
            assert (n, err) == (0, 0), size
            self.pipe_buffer = size
        else:
            assert (n, err) == (-1, errno.EINVAL), size
        assert fcntl.ioctl(f.fd, SCULL_P_IOCQSIZE) == self.pipe_buffer

    @rule()
    def reset_layout(self):
        """RESET puts the layout back to the module's parameters (not the pipe size, as in
        LDD3); devices keep theirs until their next trim."""
        fd = os.open(DEVICES[0], os.O_RDONLY)
        fcntl.ioctl(fd, SCULL_IOCRESET)
        assert fcntl.ioctl(fd, SCULL_P_IOCQSIZE) == self.pipe_buffer
        os.close(fd)
        self.settings = Layout(QUANTUM, QSET)

    @invariant()
    def proc_shows_what_the_model_holds(self):
        rows = memory_view()
        for index, device in enumerate(self.devices):
            row = rows[f"scull{index}"]
            usage = device.usage()
            assert {k: row[k] for k in usage} == usage, (index, row)
        total = rows["total"]
        assert (total["limit"], total["used"]) == (self.limit, self.limit - self.free()), total


@pytest.mark.timeout(1200)
def test_scull_devices_match_their_model(capsys):
    run_machine(ScullMachine, examples=30, steps=40, capsys=capsys)


# Room for one default quantum set's slot array (24,000 bytes) and a dozen 4,000-byte quanta,
# and for far more of the small quanta and sets the layout ioctls make: writes run into the
# limit often, at every kind of allocation.
SMALL_LIMIT = 80_000


class SmallLimitScullMachine(ScullMachine):
    """The same rules, with half of the writes long (up to 16 quanta) and half of the
    offsets within the first two quantum sets, where the data is: so that writes often run
    out of budget part way, not only at their first allocation."""

    def offsets(self, data, device):
        if data.draw(st.booleans()):
            return data.draw(st.integers(0, 2 * device.layout.qset_bytes))
        return super().offsets(data, device)

    def lengths(self, data, device):
        if data.draw(st.booleans()):
            q = min(device.layout.quantum, 1 << 16)
            return data.draw(st.integers(q, max(q, min(16 * q, 1 << 16))))
        return super().lengths(data, device)


@pytest.mark.timeout(1200)
def test_scull_devices_match_their_model_at_a_small_memory_limit(scull_params, capsys):
    """With little memory for all devices, writes stop where the model says the budget runs
    out: short, or ENOSPC when nothing fitted, with nothing kept of what did not fit."""
    scull_params(f"scull_mem_limit={SMALL_LIMIT}")
    assert memory_view()["total"]["limit"] == SMALL_LIMIT
    run_machine(SmallLimitScullMachine, examples=30, steps=40, capsys=capsys,
                reached=("ENOSPC", "short at the limit"))
