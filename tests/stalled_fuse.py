"""A FUSE file system whose files can be opened and mapped but never read: its daemon answers
every request except READ, which it only reports. A copy from such a mapping inside a
system call sleeps in the page fault for as long as the daemon lives, as it would behind a
hung FUSE or NFS server: the way a user stalls a driver that holds a lock across a user copy.

No libfuse: the daemon speaks the kernel's protocol (include/uapi/linux/fuse.h) on /dev/fuse
itself, in a forked process, so that killing it aborts the connection (the last /dev/fuse
file closes) and every stalled fault then fails with an error.
"""

import contextlib
import ctypes
import errno
import os
import signal
import stat
import struct
import tempfile

from helpers import libc

FUSE_LOOKUP = 1
FUSE_FORGET = 2
FUSE_GETATTR = 3
FUSE_OPEN = 14
FUSE_READ = 15
FUSE_RELEASE = 18
FUSE_FLUSH = 25
FUSE_INIT = 26
FUSE_INTERRUPT = 36
FUSE_DESTROY = 38
FUSE_BATCH_FORGET = 42
NO_REPLY = (FUSE_FORGET, FUSE_INTERRUPT, FUSE_DESTROY, FUSE_BATCH_FORGET)

IN_HEADER = struct.Struct("<IIQQIIIHH")    # len, opcode, unique, nodeid, uid, gid, pid, ...
OUT_HEADER = struct.Struct("<IiQ")         # len, error, unique
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # struct fuse_attr
READ_IN = struct.Struct("<QQII")           # fh, offset, size, read_flags (then more)
ROOT = 1
FILE_SIZE = 1 << 16
MNT_DETACH = 2


def _attr(nodeid):
    mode = stat.S_IFDIR | 0o755 if nodeid == ROOT else stat.S_IFREG | 0o644
    size = 0 if nodeid == ROOT else FILE_SIZE
    return ATTR.pack(nodeid, size, size // 512, 0, 0, 0, 0, 0, 0, mode, 1, 0, 0, 0, 4096, 0)


def _reply(fuse, unique, payload=b"", error=0):
    os.write(fuse, OUT_HEADER.pack(OUT_HEADER.size + len(payload), -error, unique) + payload)


def _serve(fuse, names, report):
    """The daemon's loop: answers everything but READ, which it writes to `report` as
    'NAME OFFSET'. Returns when the connection ends."""
    nodeids = {name: ROOT + 1 + i for i, name in enumerate(names)}
    by_nodeid = {nodeid: name for name, nodeid in nodeids.items()}
    while True:
        try:
            request = os.read(fuse, 1 << 17)
        except OSError as err:
            if err.errno in (errno.EINTR, errno.ENOENT):  # ENOENT: an interrupted request
                continue
            return  # ENODEV: unmounted or aborted
        _, opcode, unique, nodeid = IN_HEADER.unpack_from(request)[:4]
        body = request[IN_HEADER.size:]
        if opcode in NO_REPLY:
            continue
        if opcode == FUSE_INIT:
            major, minor = struct.unpack_from("<II", body)
            # major, minor, max_readahead, flags, max_background, congestion_threshold,
            # max_write, time_gran, then nothing: no feature flags, so reads are synchronous.
            _reply(fuse, unique, struct.pack("<IIIIHHII", major, minor, 0, 0, 1, 1, 4096, 1)
                   + bytes(64 - 28))
        elif opcode == FUSE_LOOKUP:
            name = body.split(b"\0", 1)[0].decode()
            if nodeid != ROOT or name not in nodeids:
                _reply(fuse, unique, error=errno.ENOENT)
            else:
                # nodeid, generation, entry and attribute validity (s, ns), then the attributes.
                _reply(fuse, unique, struct.pack("<QQQQII", nodeids[name], 1, 3600, 3600, 0, 0)
                       + _attr(nodeids[name]))
        elif opcode == FUSE_GETATTR:
            _reply(fuse, unique, struct.pack("<QII", 3600, 0, 0) + _attr(nodeid))
        elif opcode == FUSE_OPEN:
            _reply(fuse, unique, struct.pack("<QIi", 0, 0, 0))
        elif opcode in (FUSE_FLUSH, FUSE_RELEASE):
            _reply(fuse, unique)
        elif opcode == FUSE_READ:
            _, offset, _, _ = READ_IN.unpack_from(body)
            os.write(report, f"{by_nodeid.get(nodeid, nodeid)} {offset}\n".encode())
        else:
            _reply(fuse, unique, error=errno.ENOSYS)


class StalledFuse:
    """Mounts the file system with files `names` at a fresh directory (`path(name)`), its
    daemon forked; `wait_read()` returns the 'NAME OFFSET' of the next READ the daemon
    leaves unanswered. `close()` kills the daemon, which fails every stalled fault, and
    unmounts."""

    def __init__(self, names):
        self.mountpoint = tempfile.mkdtemp(prefix="scull-stall-")
        fuse = os.open("/dev/fuse", os.O_RDWR)
        options = f"fd={fuse},rootmode={stat.S_IFDIR:o},user_id=0,group_id=0".encode()
        if libc.mount(b"scull-stall", self.mountpoint.encode(), b"fuse.scull-stall", 0,
                      options) != 0:
            err = ctypes.get_errno()
            os.close(fuse)
            os.rmdir(self.mountpoint)
            raise OSError(err, f"mount fuse at {self.mountpoint}: {os.strerror(err)}")
        report_r, report_w = os.pipe()
        self.daemon = os.fork()
        if self.daemon == 0:
            try:
                os.close(report_r)
                _serve(fuse, names, report_w)
            finally:
                os._exit(0)
        # The daemon's copy is the only /dev/fuse file left: its exit aborts the connection.
        os.close(fuse)
        os.close(report_w)
        self.reports = os.fdopen(report_r)

    def path(self, name):
        return os.path.join(self.mountpoint, name)

    def wait_read(self):
        """Blocks until the daemon receives a READ (it never answers one); returns what it
        reported."""
        line = self.reports.readline()
        assert line, "the FUSE daemon ended before any READ"
        return line.strip()

    def close(self):
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.daemon, signal.SIGKILL)
        os.waitpid(self.daemon, 0)
        self.reports.close()
        libc.umount2(self.mountpoint.encode(), MNT_DETACH)
        os.rmdir(self.mountpoint)


libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
