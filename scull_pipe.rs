// SPDX-License-Identifier: GPL-2.0

//! scullpipe, LDD3 chapter 6's blocking FIFO: `read` sleeps while the pipe is empty and
//! `write` while it is full, each waking the other; `O_NONBLOCK` gets `EAGAIN` instead;
//! `poll` reports which way data can flow; `FASYNC` files get `SIGIO` on new data.
//!
//! Data sits in a ring buffer of `scull_p_buffer` bytes behind a [`Mutex`]. Readers sleep on
//! one [`PollCondVar`], writers on another, with the lock released while they sleep, as
//! `wait_event_interruptible` does in LDD3. Unlike LDD3, a call moves data across the ring's
//! wrap point, so a read returns everything available up to its count.

use crate::{
    chrdev::Operations,
    fasync::FasyncQueue,
    kiocb::kiocb_open_file, //
};
use kernel::{
    bindings,
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
        Mutex,
        MutexGuard, //
    }, //
};

/// Largest pipe buffer: one `kvmalloc` allocation per pipe.
pub(crate) const MAX_PIPE_BUFFER: usize = 1 << 20;

/// The bytes in a pipe: a ring of fixed capacity.
struct Ring {
    buffer: KVVec<u8>,
    /// Index of the oldest byte.
    start: usize,
    /// Bytes held, at most `buffer.len()`.
    len: usize,
}

impl Ring {
    fn capacity(&self) -> usize {
        self.buffer.len()
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// Hands out up to `max` of the oldest bytes, in at most two pieces (before and after the
    /// wrap point), to `sink`, which returns how much of each it took; removes what it took.
    fn take(&mut self, max: usize, mut sink: impl FnMut(&[u8]) -> usize) -> usize {
        let mut done = 0;
        while done < max && !self.is_empty() {
            let contiguous = self.len.min(self.capacity() - self.start);
            let want = contiguous.min(max - done);
            let taken = sink(&self.buffer[self.start..self.start + want]);
            self.start = (self.start + taken) % self.capacity();
            self.len -= taken;
            done += taken;
            if taken < want {
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
            let end = (self.start + self.len) % self.capacity();
            let contiguous = (self.capacity() - self.len).min(self.capacity() - end);
            let want = contiguous.min(max - done);
            let filled = source(&mut self.buffer[end..end + want]);
            self.len += filled;
            done += filled;
            if filled < want {
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
    ring: Mutex<Ring>,
    /// Readers wait here for data.
    #[pin]
    readable: PollCondVar,
    /// Writers wait here for space.
    #[pin]
    writable: PollCondVar,
    readers_to_signal: FasyncQueue,
}

impl PipeDev {
    /// A new, empty pipe of `size` bytes (at most [`MAX_PIPE_BUFFER`]).
    pub(crate) fn new(size: usize) -> Result<impl PinInit<Self, Error>> {
        if size == 0 || size > MAX_PIPE_BUFFER {
            return Err(EINVAL);
        }
        let buffer = KVVec::from_elem(0, size, GFP_KERNEL)?;
        Ok(try_pin_init!(Self {
            ring <- new_mutex!(Ring {
                buffer,
                start: 0,
                len: 0
            }),
            readable <- new_poll_condvar!("scullpipe::readable"),
            writable <- new_poll_condvar!("scullpipe::writable"),
            readers_to_signal: FasyncQueue::new(),
        }? Error))
    }

    /// The ring once `ready` holds for it, sleeping on `queue` meanwhile; `EAGAIN` instead of
    /// sleeping for a non-blocking file, `ERESTARTSYS` when a signal ends the sleep.
    fn wait_until(
        &self,
        file: &LocalFile,
        queue: &PollCondVar,
        ready: impl Fn(&Ring) -> bool,
    ) -> Result<MutexGuard<'_, Ring>> {
        let mut ring = self.ring.lock();
        while !ready(&ring) {
            if file.flags() & flags::O_NONBLOCK != 0 {
                return Err(EAGAIN);
            }
            if queue.wait_interruptible(&mut ring) {
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
        let mut ring = self.wait_until(file, &self.readable, |ring| !ring.is_empty())?;
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
        let mut ring = self.wait_until(file, &self.writable, |ring| !ring.is_full())?;
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
        Ok(device.clone())
    }

    fn read_iter(kiocb: Kiocb<'_, Arc<PipeDev>>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let file = kiocb_open_file(&kiocb);
        kiocb.file().read(file, iov)
    }

    fn write_iter(kiocb: Kiocb<'_, Arc<PipeDev>>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let file = kiocb_open_file(&kiocb);
        kiocb.file().write(file, iov)
    }

    fn poll(device: ArcBorrow<'_, PipeDev>, file: &File, table: &PollTable<'_>) -> Result<u32> {
        table.register_wait(file, &device.readable);
        table.register_wait(file, &device.writable);
        let ring = device.ring.lock();
        let mut events = 0;
        if !ring.is_empty() {
            events |= bindings::POLLIN | bindings::POLLRDNORM;
        }
        if !ring.is_full() {
            events |= bindings::POLLOUT | bindings::POLLWRNORM;
        }
        Ok(events)
    }

    fn fasync(device: ArcBorrow<'_, PipeDev>, file: &File, fd: i32, on: bool) -> Result {
        device.readers_to_signal.update(file, fd, on)
    }
}
