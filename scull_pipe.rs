// SPDX-License-Identifier: GPL-2.0

//! scullpipe, LDD3 chapter 6's blocking FIFO: `read` sleeps while the pipe is empty and
//! `write` while it is full, each waking the other; `O_NONBLOCK` gets `EAGAIN` instead;
//! `poll` reports which way data can flow; `FASYNC` files get `SIGIO` on new data.
//!
//! Data sits in a ring buffer of `scull_p_buffer` bytes behind an [`InterruptibleMutex`],
//! taken as LDD3 takes its semaphore, with `down_interruptible`: the lock is held while data
//! is copied from or to user memory, so a caller may wait for it as long as a page fault
//! takes, and a signal must be able to end that wait. Readers sleep on one [`PollCondVar`],
//! writers on another, with the lock released while they sleep, as
//! `wait_event_interruptible` does in LDD3. Unlike LDD3, a call moves data across the ring's
//! wrap point, so a read returns everything available up to its count.
//!
//! A pipe lives as fifo(7) says: its buffer is taken when the first file opens it and freed,
//! with whatever data it held, when the last file closes. LDD3 frees it there too, but also
//! empties the pipe on every open, so a new reader throws away what a writer left; here an
//! open never discards data. The buffer's size is `scull_p_buffer` at load time, and then
//! whatever `SCULL_P_IOCTSIZE` last set, from the pipe's next first open.

use crate::{
    fasync::FasyncQueue,
    file_ops::{
        Operations,
        READABLE,
        WRITABLE, //
    },
    interruptible_mutex::{
        new_interruptible_mutex,
        InterruptibleMutex,
        InterruptibleMutexGuard, //
    },
    kiocb::KiocbExt,
    scull_mutex::Settings, //
};
use kernel::{
    fs::{
        file::flags,
        File,
        Kiocb,
        LocalFile, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    new_mutex,
    new_poll_condvar,
    prelude::*,
    sync::{
        poll::{
            PollCondVar,
            PollTable, //
        },
        Arc,
        ArcBorrow,
        Mutex, //
    }, //
};

/// Largest pipe buffer: one `kvmalloc` allocation per pipe.
pub(crate) const MAX_PIPE_BUFFER: usize = 1 << 20;

/// The bytes in a pipe: a ring of fixed capacity.
///
/// # Invariants
///
/// `start < buffer.len()` unless the buffer is empty, and `len <= buffer.len()`.
///
/// The arithmetic below saturates where this invariant already keeps it in range: that
/// spares the compiler panic paths it cannot prove dead, and changes no result.
struct Ring {
    buffer: KVVec<u8>,
    /// Index of the oldest byte.
    start: usize,
    /// Bytes held, at most `buffer.len()`.
    len: usize,
}

impl Ring {
    /// A ring with no buffer: what a pipe holds while no file has it open.
    fn unallocated() -> Self {
        // INVARIANT: Nothing held, in a buffer of no bytes.
        Self {
            buffer: KVVec::new(),
            start: 0,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.buffer.len()
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// The index `at` bytes past `index`, around the end of the buffer (`at` is at most the
    /// capacity, so once around is enough).
    fn wrap(&self, index: usize, at: usize) -> usize {
        let next = index.saturating_add(at);
        if next >= self.capacity() {
            next - self.capacity()
        } else {
            next
        }
    }

    /// Hands out up to `max` of the oldest bytes, in at most two pieces (before and after the
    /// wrap point), to `sink`, which returns how much of each it took; removes what it took.
    fn take(&mut self, max: usize, mut sink: impl FnMut(&[u8]) -> usize) -> usize {
        let mut done = 0;
        while done < max && !self.is_empty() {
            let contiguous = self.len.min(self.capacity().saturating_sub(self.start));
            let want = contiguous.min(max - done);
            let Some(piece) = self
                .buffer
                .get(self.start..)
                .and_then(|rest| rest.get(..want))
            else {
                break;
            };
            // A sink claiming more than it was given is held to what it was given.
            let taken = sink(piece).min(want);
            // INVARIANT: `taken` is at most the `len` bytes held, and `wrap` keeps `start`
            // inside the buffer.
            self.start = self.wrap(self.start, taken);
            self.len = self.len.saturating_sub(taken);
            done = done.saturating_add(taken);
            if taken < want || taken == 0 {
                break;
            }
        }
        done
    }

    /// Fills up to `max` bytes of free space from `source`, in at most two pieces, which
    /// returns how much of each it filled; keeps what it filled.
    fn put(&mut self, max: usize, mut source: impl FnMut(&mut [u8]) -> usize) -> usize {
        let mut done = 0;
        while done < max && !self.is_full() {
            // The first free byte, and the free bytes from there to the end of the buffer.
            let end = self.wrap(self.start, self.len);
            let free = self.capacity().saturating_sub(self.len);
            let contiguous = free.min(self.capacity().saturating_sub(end));
            let want = contiguous.min(max - done);
            let Some(piece) = self
                .buffer
                .get_mut(end..)
                .and_then(|rest| rest.get_mut(..want))
            else {
                break;
            };
            // A source claiming more than it was given is held to what it was given.
            let filled = source(piece).min(want);
            // INVARIANT: `filled` is at most the free bytes, so `len` stays within capacity.
            self.len = self.len.saturating_add(filled);
            done = done.saturating_add(filled);
            if filled < want || filled == 0 {
                break;
            }
        }
        done
    }
}

/// One scullpipe device.
#[pin_data]
pub(crate) struct PipeDev {
    #[pin]
    ring: InterruptibleMutex<Ring>,
    /// Readers wait here for data.
    #[pin]
    readable: PollCondVar,
    /// Writers wait here for space.
    #[pin]
    writable: PollCondVar,
    readers_to_signal: FasyncQueue,
    /// Files open on the pipe, and the size of its buffer. Taken before `ring` when both are:
    /// only the first open and the last release take `ring` under it, when no other file
    /// exists that could hold `ring`. Never held across a user copy, so `/proc/scullpipe`
    /// reads it without waiting behind a stalled caller.
    #[pin]
    files: Mutex<PipeFiles>,
    settings: Arc<Settings>,
}

/// What `/proc/scullpipe` shows of a pipe.
#[derive(Clone, Copy, Default)]
pub(crate) struct PipeFiles {
    /// Files open on the pipe.
    pub(crate) files: usize,
    /// Bytes of buffer it holds: none while no file is open.
    pub(crate) buffer: usize,
}

impl PipeDev {
    /// A new pipe, whose buffer of `settings.pipe_buffer()` bytes is taken at its first open.
    pub(crate) fn new(settings: Arc<Settings>) -> impl PinInit<Self> {
        pin_init!(Self {
            ring <- new_interruptible_mutex!(Ring::unallocated(), "PipeDev::ring"),
            readable <- new_poll_condvar!("scullpipe::readable"),
            writable <- new_poll_condvar!("scullpipe::writable"),
            readers_to_signal: FasyncQueue::new(),
            files <- new_mutex!(PipeFiles::default(), "PipeDev::files"),
            settings,
        })
    }

    /// Counts a new open file; the first one gets a fresh, empty buffer.
    fn attach(&self) -> Result {
        let mut state = self.files.lock();
        let more = state.files.checked_add(1).ok_or(EMFILE)?;
        if state.files == 0 {
            let size = self.settings.pipe_buffer();
            if size == 0 || size > MAX_PIPE_BUFFER {
                return Err(EINVAL);
            }
            let buffer = KVVec::from_elem(0, size, GFP_KERNEL)?;
            // No file is open, so no read, write or poll holds the lock: this does not wait
            // (and a signal cannot end it early).
            let mut ring = self.ring.lock_interruptible()?;
            // INVARIANT: Nothing held, from the start of a buffer of `size` bytes. Whatever the
            // last close could not free goes now: an open never finds old data.
            *ring = Ring {
                buffer,
                start: 0,
                len: 0,
            };
            state.buffer = size;
        }
        state.files = more;
        Ok(())
    }

    /// Counts a file less; the last one frees the buffer and whatever data it held.
    fn detach(&self) {
        let mut state = self.files.lock();
        state.files = state.files.saturating_sub(1);
        if state.files != 0 {
            return;
        }
        // As in `attach`, nothing else can hold the lock. Should the impossible happen and a
        // signal end the wait, the buffer stays until the next first open replaces it.
        let old = self
            .ring
            .lock_interruptible()
            .map(|mut ring| core::mem::replace(&mut *ring, Ring::unallocated()));
        if old.is_ok() {
            state.buffer = 0;
        }
        drop(state);
        // The buffer (up to a MiB) is freed with no lock held.
        drop(old);
    }

    /// Its files and buffer, for `/proc/scullpipe`.
    pub(crate) fn files(&self) -> PipeFiles {
        *self.files.lock()
    }

    /// The shared settings, for the ioctls.
    fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The ring once `ready` holds for it, sleeping on `queue` meanwhile; `EAGAIN` instead of
    /// sleeping for a non-blocking file, `ERESTARTSYS` when a signal ends the sleep or the
    /// wait for the lock. `doing` ("reading", "writing") names the caller in the debug line.
    fn wait_until(
        &self,
        file: &LocalFile,
        queue: &PollCondVar,
        doing: &str,
        ready: impl Fn(&Ring) -> bool,
    ) -> Result<InterruptibleMutexGuard<'_, Ring>> {
        let mut ring = self.ring.lock_interruptible()?;
        while !ready(&ring) {
            if file.flags() & flags::O_NONBLOCK != 0 {
                return Err(EAGAIN);
            }
            // LDD3's PDEBUG line, with the pid for `current->comm` (whose accessor lives in
            // complete.ko's crate, with a KUnit suite that must run once). `pr_debug!` is
            // compiled in only with CONFIG_RUST_DEBUG_ASSERTIONS (the debug kernel), and then
            // always prints at KERN_DEBUG: Rust has no dynamic debug to switch it at run time.
            pr_debug!("process {} {}: going to sleep\n", current!().pid(), doing);
            if ring.wait_interruptible(queue) {
                return Err(ERESTARTSYS);
            }
        }
        Ok(ring)
    }

    fn read(&self, file: &LocalFile, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let max = iov.len();
        if max == 0 {
            return Ok(0);
        }
        let mut ring = self.wait_until(file, &self.readable, "reading", |ring| !ring.is_empty())?;
        let count = ring.take(max, |piece| iov.copy_to_iter(piece));
        drop(ring);
        if count == 0 {
            return Err(EFAULT);
        }
        self.writable.notify_all();
        Ok(count)
    }

    fn write(&self, file: &LocalFile, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let max = iov.len();
        if max == 0 {
            return Ok(0);
        }
        let mut ring = self.wait_until(file, &self.writable, "writing", |ring| !ring.is_full())?;
        let count = ring.put(max, |piece| iov.copy_from_iter(piece));
        drop(ring);
        if count == 0 {
            return Err(EFAULT);
        }
        self.readable.notify_all();
        self.readers_to_signal.signal_input();
        Ok(count)
    }
}

/// The file operations of `/dev/scullpipeN`: a stream, so `lseek` gets `ESPIPE`.
pub(crate) struct ScullPipe;

#[vtable]
impl Operations for ScullPipe {
    type Device = PipeDev;
    type Ptr = Arc<PipeDev>;

    fn open(device: &Arc<PipeDev>, _file: &File) -> Result<Arc<PipeDev>> {
        device.attach()?;
        Ok(device.clone())
    }

    fn release(device: Arc<PipeDev>, _file: &File) {
        device.detach();
    }

    fn read_iter(kiocb: Kiocb<'_, Arc<PipeDev>>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let file = kiocb.open_file();
        kiocb.file().read(file, iov)
    }

    fn write_iter(kiocb: Kiocb<'_, Arc<PipeDev>>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let file = kiocb.open_file();
        kiocb.file().write(file, iov)
    }

    fn poll(device: ArcBorrow<'_, PipeDev>, file: &File, table: &PollTable<'_>) -> Result<u32> {
        table.register_wait(file, &device.readable);
        table.register_wait(file, &device.writable);
        // A signal that ends the wait for the lock reports nothing ready: `poll(2)` then sees
        // the signal and returns `EINTR` (or restarts), as it does for one that ends its sleep.
        let Ok(ring) = device.ring.lock_interruptible() else {
            return Ok(0);
        };
        let mut events = 0;
        if !ring.is_empty() {
            events |= READABLE;
        }
        if !ring.is_full() {
            events |= WRITABLE;
        }
        Ok(events)
    }

    /// LDD3's scull ioctls, as on every scull device: `SCULL_P_IOCTSIZE` among them.
    fn ioctl(device: ArcBorrow<'_, PipeDev>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        device.settings().ioctl(cmd, arg)
    }

    fn fasync(device: ArcBorrow<'_, PipeDev>, file: &File, fd: i32, on: bool) -> Result {
        device.readers_to_signal.update(file, fd, on)
    }
}

#[kunit_tests(scull_pipe_ring)]
mod tests {
    use super::*;

    /// An empty ring of `capacity` bytes.
    fn ring(capacity: usize) -> Result<Ring> {
        Ok(Ring {
            buffer: KVVec::from_elem(0, capacity, GFP_KERNEL)?,
            start: 0,
            len: 0,
        })
    }

    /// Puts up to `max` bytes of `data` into `ring`, copying all of each piece offered.
    fn put_all(ring: &mut Ring, data: &[u8], max: usize) -> usize {
        let mut from = 0;
        ring.put(max, |piece| {
            // Byte by byte with `zip`, which stops at the shorter side, so nothing can panic.
            let mut n = 0;
            for (to, byte) in piece.iter_mut().zip(data.iter().skip(from)) {
                *to = *byte;
                n += 1;
            }
            from += n;
            n
        })
    }

    /// Takes up to `max` bytes from `ring` into `out`, returning how many.
    fn take_all(ring: &mut Ring, out: &mut [u8], max: usize) -> usize {
        let mut to = 0;
        ring.take(max, |piece| {
            let mut n = 0;
            for (slot, byte) in out.iter_mut().skip(to).zip(piece) {
                *slot = *byte;
                n += 1;
            }
            to += n;
            n
        })
    }

    #[test]
    fn a_new_ring_is_empty_and_not_full() -> Result {
        let ring = ring(4)?;
        assert!(ring.is_empty());
        assert!(!ring.is_full());
        assert_eq!(ring.capacity(), 4);
        Ok(())
    }

    #[test]
    fn filling_stops_at_capacity() -> Result {
        let mut ring = ring(4)?;
        assert_eq!(put_all(&mut ring, b"abcdef", 6), 4);
        assert!(ring.is_full());
        assert_eq!(put_all(&mut ring, b"x", 1), 0);
        let mut out = [0u8; 8];
        assert_eq!(take_all(&mut ring, &mut out, 8), 4);
        assert_eq!(&out[..4], b"abcd");
        assert!(ring.is_empty());
        assert_eq!(take_all(&mut ring, &mut out, 8), 0);
        Ok(())
    }

    #[test]
    fn writes_and_reads_cross_the_wrap() -> Result {
        let mut ring = ring(5)?;
        let mut out = [0u8; 5];
        assert_eq!(put_all(&mut ring, b"abc", 3), 3);
        assert_eq!(take_all(&mut ring, &mut out, 2), 2);
        assert_eq!(&out[..2], b"ab");
        // Free: indices 3 and 4, then 0 and 1; four bytes go in two pieces.
        assert_eq!(put_all(&mut ring, b"defg", 4), 4);
        assert!(ring.is_full());
        assert_eq!(take_all(&mut ring, &mut out, 5), 5);
        assert_eq!(&out, b"cdefg");
        assert!(ring.is_empty());
        assert_eq!(ring.start, 2);
        Ok(())
    }

    #[test]
    fn max_limits_each_call() -> Result {
        let mut ring = ring(8)?;
        assert_eq!(put_all(&mut ring, b"abcdef", 2), 2);
        assert_eq!(ring.len, 2);
        let mut out = [0u8; 8];
        assert_eq!(take_all(&mut ring, &mut out, 1), 1);
        assert_eq!(out[0], b'a');
        assert_eq!(ring.len, 1);
        Ok(())
    }

    #[test]
    fn a_short_source_stops_the_put() -> Result {
        let mut ring = ring(6)?;
        let mut out = [0u8; 6];
        assert_eq!(put_all(&mut ring, b"abcd", 4), 4);
        assert_eq!(take_all(&mut ring, &mut out, 4), 4);
        // Start is at 4; the source has only 3 bytes though 6 are free, across the wrap.
        assert_eq!(put_all(&mut ring, b"xyz", 6), 3);
        assert_eq!(ring.len, 3);
        assert_eq!(take_all(&mut ring, &mut out, 6), 3);
        assert_eq!(&out[..3], b"xyz");
        Ok(())
    }

    #[test]
    fn a_short_sink_keeps_the_rest() -> Result {
        let mut ring = ring(4)?;
        assert_eq!(put_all(&mut ring, b"abcd", 4), 4);
        let mut out = [0u8; 3];
        assert_eq!(take_all(&mut ring, &mut out, 4), 3);
        assert_eq!(&out, b"abc");
        assert_eq!(ring.len, 1);
        let mut rest = [0u8; 1];
        assert_eq!(take_all(&mut ring, &mut rest, 4), 1);
        assert_eq!(&rest, b"d");
        Ok(())
    }
}
