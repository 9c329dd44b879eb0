// SPDX-License-Identifier: GPL-2.0

//! A mutex whose waiters a signal can wake, [`InterruptibleMutex`]: C's
//! `mutex_lock_interruptible()`, LDD3's `down_interruptible()`.
//!
//! C header: [`include/linux/mutex.h`](srctree/include/linux/mutex.h)
//!
//! Staging for `kernel::sync::Mutex`, whose `lock()` no signal can end.
//!
//! # Examples
//!
//! ```
//! # use crate::interruptible_mutex::{new_interruptible_mutex, InterruptibleMutex};
//! # use kernel::prelude::*;
//! #[pin_data]
//! struct Device {
//!     #[pin]
//!     data: InterruptibleMutex<KVec<u8>>,
//! }
//!
//! let device = KBox::pin_init(
//!     pin_init!(Device {
//!         data <- new_interruptible_mutex!(KVec::new(), "Device::data"),
//!     }),
//!     GFP_KERNEL,
//! )?;
//! // In a file operation, which returns `ERESTARTSYS` if a signal ends the wait for the lock.
//! let mut data = device.data.lock_interruptible()?;
//! data.push(1, GFP_KERNEL)?;
//! # Ok::<(), Error>(())
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_interruptible_mutex` runs this
//! example.

use core::{
    cell::UnsafeCell,
    ops::{
        Deref,
        DerefMut, //
    },
};
use kernel::{
    bindings,
    prelude::*,
    str::CStr,
    sync::{
        lock::{
            mutex::MutexBackend,
            Guard,
            Lock, //
        },
        CondVar,
        LockClassKey, //
    },
    types::Opaque, //
};

/// Creates an [`InterruptibleMutex`] initialiser holding `$inner`, with a lock class of its
/// own and `$name` for lockdep, as `new_mutex!` does for a `Mutex`.
macro_rules! new_interruptible_mutex {
    ($inner:expr, $name:literal $(,)?) => {
        $crate::interruptible_mutex::InterruptibleMutex::new(
            $inner,
            ::kernel::c_str!($name),
            ::kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_interruptible_mutex;

/// A `T` behind a kernel `struct mutex` that can be taken interruptibly.
///
/// # Invariants
///
/// `mutex` is an initialised `struct mutex`, and `data` is only reached through an
/// [`InterruptibleMutexGuard`], which exists only while its owner holds `mutex`.
#[pin_data]
pub(crate) struct InterruptibleMutex<T> {
    /// Pinned: a `struct mutex` holds a list of its waiters, which point back into it.
    #[pin]
    mutex: Opaque<bindings::mutex>,
    data: UnsafeCell<T>,
}

// SAFETY: The mutex may be handed to another thread along with the data it protects.
unsafe impl<T: Send> Send for InterruptibleMutex<T> {}

// SAFETY: The mutex hands out the data to one thread at a time (the type invariant), so sharing
// it only needs the data to be `Send`.
unsafe impl<T: Send> Sync for InterruptibleMutex<T> {}

impl<T> InterruptibleMutex<T> {
    /// An initialiser of a mutex holding `data`; [`new_interruptible_mutex!`] supplies `name`
    /// and a static `key`.
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        // INVARIANT: `__mutex_init` initialises `mutex` before anything can lock it.
        pin_init!(Self {
            data: UnsafeCell::new(data),
            // SAFETY: `slot` is valid for writes while the closure runs, and `name` and `key`
            // are static, so they stay valid for as long as the mutex exists.
            mutex <- Opaque::ffi_init(|slot| unsafe {
                bindings::__mutex_init(slot, name.as_char_ptr(), key.as_ptr())
            }),
        })
    }

    /// The kernel's view of the same `struct mutex`, which owns the lock and unlocks it.
    fn kernel_lock(&self) -> &Lock<(), MutexBackend> {
        // SAFETY: `mutex` is an initialised `struct mutex` (the type invariant) that lives as
        // long as `self`.
        unsafe { Lock::from_raw(self.mutex.get()) }
    }

    /// Wraps the kernel guard of the lock just taken.
    fn guard<'a>(&'a self, lock: Guard<'a, (), MutexBackend>) -> InterruptibleMutexGuard<'a, T> {
        InterruptibleMutexGuard {
            lock,
            data: &self.data,
        }
    }

    /// Takes the lock, sleeping until it is free or a signal arrives: `ERESTARTSYS` then, so
    /// that the call is restarted under `SA_RESTART` and fails with `EINTR` otherwise.
    ///
    /// # Errors
    ///
    /// `ERESTARTSYS` when a signal arrives before the lock is free.
    pub(crate) fn lock_interruptible(&self) -> Result<InterruptibleMutexGuard<'_, T>> {
        let mutex = self.mutex.get();
        // SAFETY: `mutex` is initialised (the type invariant). With lockdep, the C macro
        // `mutex_lock_interruptible` is this function at subclass 0.
        #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
        let status = unsafe { bindings::mutex_lock_interruptible_nested(mutex, 0) };
        // SAFETY: `mutex` is initialised (the type invariant).
        #[cfg(not(CONFIG_DEBUG_LOCK_ALLOC))]
        let status = unsafe { bindings::mutex_lock_interruptible(mutex) };
        if status != 0 {
            // `-EINTR`, the only failure: the lock was not taken.
            return Err(ERESTARTSYS);
        }
        // SAFETY: The lock was just taken by this task, which the kernel guard now owns.
        let lock = unsafe { Guard::new(self.kernel_lock(), ()) };
        // INVARIANT: The guard exists while the lock is held: it unlocks when dropped.
        Ok(self.guard(lock))
    }
}

/// The data of an [`InterruptibleMutex`], while its lock is held; unlocks when dropped.
#[must_use = "the lock unlocks immediately when the guard is unused"]
pub(crate) struct InterruptibleMutexGuard<'a, T> {
    lock: Guard<'a, (), MutexBackend>,
    data: &'a UnsafeCell<T>,
}

impl<T> InterruptibleMutexGuard<'_, T> {
    /// Releases the lock, waits on `condvar` until it is notified or a signal arrives, and
    /// takes the lock again (uninterruptibly, as `CondVar` does). Returns whether a signal is
    /// pending.
    #[must_use = "a pending signal must end the wait with ERESTARTSYS"]
    pub(crate) fn wait_interruptible(&mut self, condvar: &CondVar) -> bool {
        // The data cannot be reached while the lock is released: this guard, its only way in,
        // is borrowed mutably for the whole wait.
        condvar.wait_interruptible(&mut self.lock)
    }
}

impl<T> Deref for InterruptibleMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The lock is held while the guard exists (the mutex's type invariant), so no
        // other reference to the data exists.
        unsafe { &*self.data.get() }
    }
}

impl<T> DerefMut for InterruptibleMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: The lock is held while the guard exists (the mutex's type invariant), and the
        // guard is borrowed mutably, so this is the only reference to the data.
        unsafe { &mut *self.data.get() }
    }
}

#[kunit_tests(scull_interruptible_mutex)]
mod tests {
    use super::*;

    /// The module's example, as it is written there.
    #[test]
    fn example() -> Result {
        #[pin_data]
        struct Device {
            #[pin]
            data: InterruptibleMutex<KVec<u8>>,
        }

        let device = KBox::pin_init(
            pin_init!(Device {
                data <- new_interruptible_mutex!(KVec::new(), "Device::data"),
            }),
            GFP_KERNEL,
        )?;
        // In a file operation, which returns `ERESTARTSYS` if a signal ends the wait for the lock.
        let mut data = device.data.lock_interruptible()?;
        data.push(1, GFP_KERNEL)?;
        Ok(())
    }
}
