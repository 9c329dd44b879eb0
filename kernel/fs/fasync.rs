// SPDX-License-Identifier: GPL-2.0

//! Asynchronous notification, [`FasyncQueue`]: `SIGIO` to the owners of the files that set
//! `FASYNC` with `fcntl(2)`.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h) (`fasync_helper`, `kill_fasync`)
//!
//! Staging for `kernel::fs`.
//!
//! # Examples
//!
//! ```
//! # use crate::fasync::FasyncQueue;
//! # use kernel::{fs::File, prelude::*};
//! /// A device whose readers may ask for `SIGIO`.
//! struct Device {
//!     readers_to_signal: FasyncQueue,
//! }
//!
//! impl Device {
//!     /// The `fasync` file operation: `FASYNC` set on `file`, or cleared.
//!     fn fasync(&self, file: &File, fd: i32, on: bool) -> Result {
//!         self.readers_to_signal.update(file, fd, on)
//!     }
//!
//!     /// Called when a write made data available.
//!     fn data_arrived(&self) {
//!         self.readers_to_signal.signal_input();
//!     }
//! }
//!
//! // No file asked for `SIGIO` yet, so none is sent.
//! let device = Device {
//!     readers_to_signal: FasyncQueue::new(),
//! };
//! device.data_arrived();
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_fasync` runs this example.

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
    ///
    /// # Errors
    ///
    /// What `fasync_helper` returns: `ENOMEM` when the queue's entry cannot be allocated.
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

#[kunit_tests(scull_fasync)]
mod tests {
    use super::*;

    /// The module's example, as it is written there. (A `File` exists only in file
    /// operations, so `fasync` is compiled, not called.)
    #[test]
    fn example() {
        /// A device whose readers may ask for `SIGIO`.
        struct Device {
            readers_to_signal: FasyncQueue,
        }

        impl Device {
            /// The `fasync` file operation: `FASYNC` set on `file`, or cleared.
            fn fasync(&self, file: &File, fd: i32, on: bool) -> Result {
                self.readers_to_signal.update(file, fd, on)
            }

            /// Called when a write made data available.
            fn data_arrived(&self) {
                self.readers_to_signal.signal_input();
            }
        }

        // No file asked for `SIGIO` yet, so none is sent.
        let device = Device {
            readers_to_signal: FasyncQueue::new(),
        };
        device.data_arrived();
        let _: fn(&Device, &File, i32, bool) -> Result = Device::fasync;
    }
}
