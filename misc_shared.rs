// SPDX-License-Identifier: GPL-2.0

//! A misc device whose open files all reach one shared value.
//!
//! Staging for `kernel::miscdevice`: in Linux 7.3, `MiscDevice::open` receives only the
//! `MiscDeviceRegistration`, so a driver that keeps state for its device has nowhere to put it
//! but a global. [`SharedMisc`] registers the misc device next to a value of the driver's
//! choosing, and hands that value to [`SharedMiscOps::open`], found next to the registration
//! with `container_of`.
//!
//! # Examples
//!
//! ```ignore
//! struct CompleteFile { shared: Arc<Shared> }
//!
//! impl SharedMiscOps for CompleteFile {
//!     type Shared = Arc<Shared>;
//!     type Ptr = KBox<Self>;
//!     fn open(_file: &File, shared: &Arc<Shared>) -> Result<KBox<Self>> {
//!         Ok(KBox::new(Self { shared: shared.clone() }, GFP_KERNEL)?)
//!     }
//!     // read_iter, write_iter, ioctl...
//! }
//!
//! // In the module's state: `#[pin] device: SharedMisc<CompleteFile>`, built with
//! device <- SharedMisc::register(c"complete", Arc::pin_init(Shared::new(), GFP_KERNEL)?),
//! ```

use core::marker::PhantomData;

use kernel::{
    container_of,
    fs::{
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    prelude::*,
    types::ForeignOwnable, //
};

/// The file operations of a [`SharedMisc`] device.
///
/// The same operations as [`MiscDevice`], except that `open` also receives the shared value.
pub(crate) trait SharedMiscOps: Sized + 'static {
    /// The value every open file can reach.
    type Shared: Send + Sync;
    /// What an open file keeps as its private data.
    type Ptr: ForeignOwnable + Send + Sync;
    /// Called when the device is opened; the result becomes the file's private data.
    fn open(file: &File, shared: &Self::Shared) -> Result<Self::Ptr>;
    /// Reads from the device.
    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize>;
    /// Writes to the device.
    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize>;
    /// Handles `ioctl(2)`.
    fn ioctl(
        this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        file: &File,
        cmd: u32,
        arg: usize,
    ) -> Result<isize>;
}

/// The misc-device operations behind a [`SharedMisc`]; private, so that only [`SharedMisc`]
/// can register a misc device with them.
struct Ops<T>(PhantomData<T>);

/// A misc device plus a value that all its open files share.
///
/// # Invariants
///
/// `registration` is the only registration of `Ops<T>`'s operations: `Ops` is private to this
/// file and nothing else here registers it. So every `MiscDeviceRegistration<Ops<T>>` lives in
/// the `registration` field of a `SharedMisc<T>`.
#[pin_data]
pub(crate) struct SharedMisc<T: SharedMiscOps> {
    // Declared first so that it is dropped first: no open can start once `shared` goes.
    #[pin]
    registration: MiscDeviceRegistration<Ops<T>>,
    #[pin]
    shared: T::Shared,
}

impl<T: SharedMiscOps> SharedMisc<T> {
    /// Initialises `shared`, then registers a misc device named `name` that reaches it.
    pub(crate) fn register(
        name: &'static CStr,
        shared: impl PinInit<T::Shared>,
    ) -> impl PinInit<Self, Error> {
        // INVARIANT: The registration is of `Ops<T>`, which only this function registers, and
        // it is the `registration` field of the `SharedMisc<T>` being initialised.
        try_pin_init!(Self {
            shared <- shared,
            registration <- MiscDeviceRegistration::register(MiscDeviceOptions { name }),
        })
    }
}

#[vtable]
impl<T: SharedMiscOps> MiscDevice for Ops<T> {
    type Ptr = T::Ptr;

    fn open(file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<T::Ptr> {
        let misc = core::ptr::from_ref(misc).cast_mut();
        // SAFETY: By the invariants of `SharedMisc`, `misc` is the `registration` field of a
        // `SharedMisc<T>`, which outlives this call: the misc core holds `misc_mtx` during
        // `open`, and deregistration takes it too.
        let device = unsafe { &*container_of!(misc, SharedMisc<T>, registration) };
        T::open(file, &device.shared)
    }

    fn read_iter(kiocb: Kiocb<'_, T::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        T::read_iter(kiocb, iov)
    }

    fn write_iter(kiocb: Kiocb<'_, T::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        T::write_iter(kiocb, iov)
    }

    fn ioctl(
        this: <T::Ptr as ForeignOwnable>::Borrowed<'_>,
        file: &File,
        cmd: u32,
        arg: usize,
    ) -> Result<isize> {
        T::ioctl(this, file, cmd, arg)
    }
}
