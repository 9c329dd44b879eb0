// SPDX-License-Identifier: GPL-2.0

//! A scull device: its memory behind a mutex that a signal can interrupt, and the settings
//! all devices share.

use crate::{
    interruptible_mutex::{
        new_interruptible_mutex,
        InterruptibleMutex, //
    },
    scull_layout::Layout,
    scull_storage::{
        MemoryBudget,
        Storage,
        Usage,
        WriteSource, //
    }, //
};
use kernel::{
    new_mutex,
    new_spinlock,
    prelude::*,
    sync::{
        Arc,
        Mutex,
        SpinLock, //
    }, //
};

/// What all scull devices share: the layout they adopt when they are next trimmed (LDD3's
/// `scull_quantum` and `scull_qset` globals, changed through the ioctls), the size of a
/// scullpipe's buffer (LDD3's `scull_p_buffer`), and the memory budget they draw from.
#[pin_data]
pub(crate) struct Settings {
    /// The layout given at load time, which `SCULL_IOCRESET` restores.
    initial: Layout,
    #[pin]
    current: Mutex<Layout>,
    /// The bytes of buffer a scullpipe takes when it is next opened with no file open.
    #[pin]
    pipe_buffer: Mutex<usize>,
    budget: Arc<MemoryBudget>,
}

impl Settings {
    /// Settings that start from, and reset to, `layout`, with pipes of `pipe_buffer` bytes,
    /// for devices that draw from `budget`.
    pub(crate) fn new(
        layout: Layout,
        pipe_buffer: usize,
        budget: Arc<MemoryBudget>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            initial: layout,
            current <- new_mutex!(layout, "Settings::current"),
            pipe_buffer <- new_mutex!(pipe_buffer, "Settings::pipe_buffer"),
            budget,
        })
    }

    /// The size of the buffer a pipe takes when it is next opened with no file open.
    pub(crate) fn pipe_buffer(&self) -> usize {
        *self.pipe_buffer.lock()
    }

    /// Sets the size of the buffer pipes take from their next open with no file open; the
    /// caller checks it.
    pub(crate) fn set_pipe_buffer(&self, size: usize) {
        *self.pipe_buffer.lock() = size;
    }

    /// The memory budget of all devices.
    pub(crate) fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// The layout the next trim adopts.
    pub(crate) fn current(&self) -> Layout {
        *self.current.lock()
    }

    /// Goes back to the load-time layout.
    pub(crate) fn reset(&self) {
        *self.current.lock() = self.initial;
    }

    /// Replaces the layout with what `change` makes of it, unless it fails, and returns the
    /// old layout. `change` runs under the lock, so that an exchange is atomic: it must not
    /// sleep for long (no user copy), since every device's trim waits for this lock.
    ///
    /// # Errors
    ///
    /// What `change` returns, and then the layout stays as it was.
    pub(crate) fn update<E>(
        &self,
        change: impl FnOnce(Layout) -> Result<Layout, E>,
    ) -> Result<Layout, E> {
        let mut current = self.current.lock();
        let old = *current;
        *current = change(old)?;
        Ok(old)
    }

    /// Replaces the layout with `new` if it is still `old`, and says whether it did: the
    /// second half of an exchange whose first half (a user copy) ran without the lock.
    pub(crate) fn replace_if(&self, old: Layout, new: Layout) -> bool {
        let mut current = self.current.lock();
        if *current != old {
            return false;
        }
        *current = new;
        true
    }
}

/// A scull device: its memory behind a mutex, and a copy of what it holds for the `/proc`
/// views.
///
/// The memory's lock is held while data is copied from or to user space, which can take as
/// long as a page fault does: forever, for a file of a FUSE daemon that never answers. So the
/// file operations take it interruptibly, and what may not wait at all (the `/proc` views,
/// `lseek(SEEK_END)`) reads the copy instead.
///
/// # Invariants
///
/// `usage` is the usage of `storage` as the last call that changed it left it.
#[pin_data]
pub(crate) struct ScullDev {
    /// Every access to the data goes through this lock: the data is only reachable through the
    /// guard, so there is no code path that could allocate a quantum without holding it.
    #[pin]
    storage: InterruptibleMutex<Storage>,
    /// Taken only for the time it takes to copy a [`Usage`], never across a user copy.
    #[pin]
    usage: SpinLock<Usage>,
    settings: Arc<Settings>,
}

impl ScullDev {
    /// A new, empty device that follows `settings` when trimmed.
    pub(crate) fn new(settings: Arc<Settings>) -> impl PinInit<Self> {
        let storage = Storage::new(settings.current(), settings.budget.clone());
        let usage = storage.usage();
        // INVARIANT: `usage` is the empty storage's.
        pin_init!(Self {
            storage <- new_interruptible_mutex!(storage, "ScullDev::storage"),
            usage <- new_spinlock!(usage, "ScullDev::usage"),
            settings,
        })
    }

    /// Runs `change` on the memory, under its lock, and keeps the copy of its usage up to
    /// date; `ERESTARTSYS` when a signal arrives while waiting for the lock.
    fn change<R>(&self, change: impl FnOnce(&mut Storage) -> R) -> Result<R> {
        let mut storage = self.storage.lock_interruptible()?;
        let result = change(&mut storage);
        // INVARIANT: Copied before the memory's lock is released, so no later change can be
        // overwritten by this one's.
        *self.usage.lock() = storage.usage();
        Ok(result)
    }

    /// Copies data from offset `pos` to `sink`, as [`Storage::read`] does; `ERESTARTSYS`
    /// when a signal arrives while waiting for the lock.
    ///
    /// # Errors
    ///
    /// As [`Storage::read`], and `ERESTARTSYS` when a signal arrives while waiting for the lock.
    pub(crate) fn read(
        &self,
        pos: u64,
        len: usize,
        sink: impl FnMut(&[u8]) -> usize,
    ) -> Result<usize> {
        self.storage.lock_interruptible()?.read(pos, len, sink)
    }

    /// Copies data from `source` to offset `pos`, as [`Storage::write`] does; `ERESTARTSYS`
    /// when a signal arrives while waiting for the lock.
    ///
    /// # Errors
    ///
    /// As [`Storage::write`], and `ERESTARTSYS` when a signal arrives while waiting for the lock.
    pub(crate) fn write(&self, pos: u64, len: usize, source: impl WriteSource) -> Result<usize> {
        self.change(|storage| storage.write(pos, len, source))?
    }

    /// Frees the device's memory; it adopts the current settings (LDD3's `scull_trim`).
    /// `ERESTARTSYS` when a signal arrives while waiting for the lock.
    ///
    /// # Errors
    ///
    /// `ERESTARTSYS` when a signal arrives while waiting for the lock.
    pub(crate) fn trim(&self) -> Result {
        let layout = self.settings.current();
        self.change(|storage| storage.trim(layout))
    }

    /// What the device holds, as the last completed change left it: never waits for a
    /// caller that holds the memory's lock.
    pub(crate) fn usage(&self) -> Usage {
        *self.usage.lock()
    }

    /// The settings that the device follows.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }
}
