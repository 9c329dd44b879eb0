// SPDX-License-Identifier: GPL-2.0

//! Misc devices served by the file operations of `file_ops.rs`.
//!
//! Staging for `kernel::miscdevice`. In Linux 7.3, `MiscDevice` has no `poll` slot, its
//! `open` receives only the registration (so a driver's state has nowhere to live but a
//! global), and its `read_iter` and `write_iter` assert the iterator's direction, a panic path
//! compiled into every module that uses them. A [`Registration`] registers a misc device with
//! an [`Operations`] implementation instead: the one that `chrdev.rs` serves, `poll` included,
//! with one [`Operations::Device`] that every open file receives.
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h).
//!
//! # Examples
//!
//! ```ignore
//! #[vtable]
//! impl Operations for CompleteFile {
//!     type Device = Shared;
//!     type Ptr = KBox<Self>;
//!     fn open(shared: &Arc<Shared>, _file: &File) -> Result<KBox<Self>> {
//!         Ok(KBox::new(Self { shared: shared.clone() }, GFP_KERNEL)?)
//!     }
//!     // read_iter, write_iter, poll, ioctl...
//! }
//!
//! // In the module's state: `#[pin] device: misc::Registration<CompleteFile>`, built with
//! // device <- misc::Registration::new(c"complete", Arc::pin_init(Shared::new(), GFP_KERNEL)?),
//! ```

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
