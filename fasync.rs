// SPDX-License-Identifier: GPL-2.0

//! Asynchronous notification: `SIGIO` to the files that asked for it with `fcntl(2)`'s
//! `FASYNC` flag.
//!
//! Staging for `kernel::fs` (a `kernel::fs::fasync` module): Linux 7.3's Rust API has no
//! wrapper of `struct fasync_struct`. [`FasyncQueue`] is the list head that C drivers keep
//! next to their wait queues, with the two calls made on it: `fasync_helper` from the file's
//! `fasync` operation ([`FasyncQueue::update`]) and `kill_fasync` when data arrives
//! ([`FasyncQueue::signal_input`]).
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h)
//!
//! # Examples
//!
//! ```ignore
//! // In the device: `readers_to_signal: FasyncQueue`, built with `FasyncQueue::new()`.
//! fn fasync(this: &Device, file: &File, fd: i32, on: bool) -> Result {
//!     this.readers_to_signal.update(file, fd, on)
//! }
//! // After a write made data available:
//! this.readers_to_signal.signal_input();
//! ```

use core::ptr;
use kernel::{
    bindings,
    error::to_result,
    ffi::c_int,
    fs::File,
    prelude::*,
    types::Opaque, //
};

/// The files that asked for `SIGIO` on a device (C's `struct fasync_struct *` list head).
///
/// # Invariants
///
/// `head` is null or the head of a list that only `fasync_helper` and `kill_fasync` touch.
pub(crate) struct FasyncQueue {
    head: Opaque<*mut bindings::fasync_struct>,
}

// SAFETY: `fasync_helper` serialises changes to the list with its own locks, and
// `kill_fasync` reads it under RCU: both may be called from any thread.
unsafe impl Send for FasyncQueue {}

// SAFETY: As for `Send`.
unsafe impl Sync for FasyncQueue {}

impl FasyncQueue {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        // INVARIANT: An empty list.
        Self {
            head: Opaque::new(ptr::null_mut()),
        }
    }

    /// Adds `file` (whose descriptor is `fd`) to the queue, or removes it: what a file's
    /// `fasync` operation is asked (see `file_ops::Operations::fasync`).
    pub(crate) fn update(&self, file: &File, fd: i32, on: bool) -> Result {
        // SAFETY: `file` is a live file, and `head` is a list head as the invariants say.
        let ret =
            unsafe { bindings::fasync_helper(fd, file.as_ptr(), c_int::from(on), self.head.get()) };
        to_result(ret)
    }

    /// Sends `SIGIO` (band `POLL_IN`: new data to read) to the owner of every file on the queue.
    pub(crate) fn signal_input(&self) {
        // SAFETY: `head` is a list head as the invariants say.
        unsafe {
            bindings::kill_fasync(
                self.head.get(),
                bindings::SIGIO as c_int,
                bindings::POLL_IN as c_int,
            )
        };
    }
}

impl Drop for FasyncQueue {
    fn drop(&mut self) {
        // Every file leaves the queue before its release (the kernel calls `fasync` with
        // `on == false` first if the flag is still set), and the device outlives its open
        // files, so nothing is left to free here.
        // SAFETY: `&mut self`: nobody else reads the head now.
        let empty = unsafe { (*self.head.get()).is_null() };
        if !empty {
            pr_err!("fasync queue dropped with files still on it\n");
        }
    }
}
