// SPDX-License-Identifier: GPL-2.0

//! Misc devices ([`Registration`]) served by the file operations of an [`Operations`]
//! implementation, with one [`Operations::Device`] that every open file receives.
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h)
//!
//! Staging for `kernel::miscdevice`, whose `MiscDevice` has no `poll`.
//!
//! # Examples
//!
//! ```
//! # use crate::{file_ops::Operations, miscdevice::Registration};
//! # use kernel::{fs::File, prelude::*, sync::Arc};
//! /// What every file that opens the device shares.
//! struct Counter;
//!
//! /// The device's file operations: all of them but `open` are optional.
//! struct CounterFile;
//!
//! #[vtable]
//! impl Operations for CounterFile {
//!     type Device = Counter;
//!     // Each open file keeps a reference to the one `Counter`.
//!     type Ptr = Arc<Counter>;
//!
//!     fn open(counter: &Arc<Counter>, _file: &File) -> Result<Arc<Counter>> {
//!         Ok(counter.clone())
//!     }
//! }
//!
//! // `/dev/example`, with a dynamic minor, for as long as `registration` lives.
//! let device = Arc::new(Counter, GFP_KERNEL)?;
//! let registration = Registration::<CounterFile>::new(c"example", device);
//! let registration = KBox::pin_init(registration, GFP_KERNEL)?;
//! drop(registration);
//! # Ok::<(), Error>(())
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_miscdevice` runs this example.

use core::marker::PhantomData;

use crate::file_ops::{
    FindDevice,
    Operations,
    Vtable, //
};
use kernel::{
    bindings,
    container_of,
    error::to_result,
    prelude::*,
    sync::Arc,
    types::Opaque, //
};

/// A misc device whose files are served by `T`, all opening one `T::Device`.
///
/// # Invariants
///
/// `raw` is registered with `misc_register`, with [`Vtable<T, Self>`]'s file operations, from
/// its initialisation until [`Drop`] deregisters it. Those operations are registered nowhere
/// else, so every file they open was opened through the `raw` of a `Registration<T>`.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Operations> {
    device: Arc<T::Device>,
    #[pin]
    raw: Opaque<bindings::miscdevice>,
    _ops: PhantomData<T>,
}

// SAFETY: The misc device is only used through the misc API, which may be called from any
// thread, and `device` is `Send + Sync`.
unsafe impl<T: Operations> Send for Registration<T> {}

// SAFETY: `&self` gives no access to the misc device, and `device` is `Send + Sync`.
unsafe impl<T: Operations> Sync for Registration<T> {}

impl<T: Operations> Registration<T> {
    /// Registers a misc device named `name` (`/dev/NAME`, with a dynamic minor) whose every
    /// open file receives `device`.
    ///
    /// # Errors
    ///
    /// What `misc_register` returns: `EBUSY` when no minor is free, or the error of creating
    /// the device (`EEXIST` for a name taken, `ENOMEM`).
    pub(crate) fn new(name: &'static CStr, device: Arc<T::Device>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            device,
            raw <- Opaque::try_ffi_init(move |raw: *mut bindings::miscdevice| {
                // SAFETY: `raw` points to pinned memory valid for writes; an all-zero
                // `miscdevice` is a valid one before its fields are set.
                unsafe {
                    raw.write(pin_init::zeroed());
                    (*raw).minor = bindings::MISC_DYNAMIC_MINOR as i32;
                    (*raw).name = name.as_char_ptr();
                    (*raw).fops = Vtable::<T, Self>::build();
                }
                // SAFETY: `raw` is initialised and pinned, and `name` is static. From here on
                // `open` may run: it finds this registration through `container_of`, which
                // the pinning keeps valid, and `device` is initialised already.
                // INVARIANT: On success `raw` is registered with `Vtable<T, Self>`'s
                // operations; `Drop` deregisters it.
                to_result(unsafe { bindings::misc_register(raw) })
            }),
            _ops: PhantomData,
        })
    }
}

#[pinned_drop]
impl<T: Operations> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariants `raw` is registered. `misc_deregister` takes the
        // misc core's lock, which every `open` of the device holds while it runs: once it
        // returns, no `open` is using this registration, and none can start.
        unsafe { bindings::misc_deregister(self.raw.get()) };
    }
}

impl<T: Operations> FindDevice<T> for Registration<T> {
    unsafe fn find_device<'a>(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> Option<&'a Arc<T::Device>> {
        // SAFETY: The caller opens `file` through a `Registration<T>`'s operations, which by
        // the type invariants only a registered `raw` serves; `misc_open` stores that
        // `miscdevice` in `private_data` before it calls `open`, and holds the misc core's
        // lock meanwhile, so `Drop` cannot run before the call returns.
        let registration = unsafe {
            let raw = Opaque::cast_from((*file).private_data.cast::<bindings::miscdevice>());
            &*container_of!(raw.cast_mut(), Self, raw)
        };
        Some(&registration.device)
    }
}

#[kunit_tests(scull_miscdevice)]
mod tests {
    use super::*;
    use crate::kiocb::KiocbExt;
    use kernel::fs::{
        file::flags,
        File,
        Kiocb, //
    };
    use kernel::types::ForeignOwnable;

    /// The module's example, as it is written there.
    #[test]
    fn example() -> Result {
        /// What every file that opens the device shares.
        struct Counter;

        /// The device's file operations: all of them but `open` are optional.
        struct CounterFile;

        #[vtable]
        impl Operations for CounterFile {
            type Device = Counter;
            // Each open file keeps a reference to the one `Counter`.
            type Ptr = Arc<Counter>;

            fn open(counter: &Arc<Counter>, _file: &File) -> Result<Arc<Counter>> {
                Ok(counter.clone())
            }
        }

        // `/dev/example`, with a dynamic minor, for as long as `registration` lives.
        let device = Arc::new(Counter, GFP_KERNEL)?;
        let registration = Registration::<CounterFile>::new(c"example", device);
        let registration = KBox::pin_init(registration, GFP_KERNEL)?;
        drop(registration);
        Ok(())
    }

    /// The example of `kiocb.rs`, which is built into both modules: a KUnit suite there would
    /// be registered twice. A `Kiocb` exists only inside `read_iter` and `write_iter`, so this
    /// case proves that the example compiles, not what it returns.
    #[test]
    fn kiocb_example() {
        /// Whether a `read(2)` or `write(2)` must not sleep.
        fn is_nonblocking<T: ForeignOwnable>(kiocb: &Kiocb<'_, T>) -> bool {
            kiocb.open_file().flags() & flags::O_NONBLOCK != 0
        }
        let _: fn(&Kiocb<'_, KBox<u8>>) -> bool = is_nonblocking;
    }
}
