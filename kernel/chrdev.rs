// SPDX-License-Identifier: GPL-2.0

//! Character devices: a range of device numbers ([`Region`]) served by a `struct cdev`
//! ([`Registration`]) with the file operations of an [`Operations`] implementation.
//!
//! C headers: [`include/linux/cdev.h`](srctree/include/linux/cdev.h),
//! [`include/linux/fs.h`](srctree/include/linux/fs.h)
//!
//! Staging for `kernel::chrdev`, next to `kernel::miscdevice`.
//!
//! # Examples
//!
//! ```
//! # use crate::{chrdev::{Region, Registration}, file_ops::Operations};
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
//!     type Ptr = Arc<Counter>;
//!
//!     fn open(device: &Arc<Counter>, _file: &File) -> Result<Arc<Counter>> {
//!         Ok(device.clone())
//!     }
//! }
//!
//! // A free major with minors 0 and 1, shown as "example" in /proc/devices.
//! let region = Region::new(c"example", 0, 0, 2)?;
//! // Minor 1 opens the one `Counter`; minor 0 is left unserved.
//! let mut devices = KVec::new();
//! devices.push(Arc::new(Counter, GFP_KERNEL)?, GFP_KERNEL)?;
//! let registration = Registration::<CounterFile>::new(&region, 1, devices);
//! let registration = KBox::pin_init(registration, GFP_KERNEL)?;
//! // Opens get ENXIO until now: a module serves once nothing in its init can fail.
//! registration.serve();
//! // The registration goes first: it serves numbers of the region.
//! drop(registration);
//! drop(region);
//! # Ok::<(), Error>(())
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_chrdev` runs this example.

use core::{
    marker::PhantomData,
    ptr, //
};

use crate::file_ops::{
    FindDevice,
    Operations,
    Vtable, //
};
use kernel::{
    bindings,
    container_of,
    error::to_result,
    module::this_module,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Release, //
        },
        Arc, //
    },
    types::Opaque, //
};

/// Number of bits of a device number that hold the minor (`MINORBITS` in C).
const MINOR_BITS: u32 = bindings::MINORBITS;

/// Largest major number the kernel accepts for character devices.
pub(crate) const MAX_MAJOR: u32 = bindings::CHRDEV_MAJOR_MAX - 1;

/// Largest minor number.
pub(crate) const MAX_MINOR: u32 = bindings::MINORMASK;

/// A range of character device numbers, released when dropped.
///
/// # Invariants
///
/// `base..base + count` was registered with `alloc_chrdev_region` or `register_chrdev_region`
/// and stays registered until [`Drop`], which unregisters it exactly once.
pub(crate) struct Region {
    base: bindings::dev_t,
    count: u32,
}

impl Region {
    /// Reserves `count` minors starting at `first_minor` under `name`.
    ///
    /// A `major` of zero asks the kernel for a free major, as LDD3's `scull_major = 0` does.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty range or one past the largest major or minor, `EBUSY` when the
    /// numbers (or, for major 0, every free major) are taken.
    pub(crate) fn new(
        name: &'static CStr,
        major: u32,
        first_minor: u32,
        count: u32,
    ) -> Result<Self> {
        let last_minor = first_minor.checked_add(count).ok_or(EINVAL)?;
        if count == 0 || major > MAX_MAJOR || last_minor > MAX_MINOR + 1 {
            return Err(EINVAL);
        }
        let base = if major == 0 {
            let mut base: bindings::dev_t = 0;
            // SAFETY: `base` is a valid place for the result and `name` is a NUL-terminated
            // string that outlives the call (the kernel copies it).
            to_result(unsafe {
                bindings::alloc_chrdev_region(&mut base, first_minor, count, name.as_char_ptr())
            })?;
            base
        } else {
            let base = (major << MINOR_BITS) | first_minor;
            // SAFETY: `name` is a NUL-terminated string that outlives the call.
            to_result(unsafe {
                bindings::register_chrdev_region(base, count, name.as_char_ptr())
            })?;
            base
        };
        // INVARIANT: The range was registered just above.
        Ok(Self { base, count })
    }

    /// The major number of the region.
    pub(crate) fn major(&self) -> u32 {
        self.base >> MINOR_BITS
    }

    /// The first minor of the region.
    pub(crate) fn first_minor(&self) -> u32 {
        self.base & MAX_MINOR
    }

    /// The device numbers `index..index + count` of the region, if they are all inside it.
    fn sub_range(&self, index: u32, count: u32) -> Result<bindings::dev_t> {
        match index.checked_add(count) {
            // Inside the region, whose numbers `Region::new` reserved: no overflow.
            Some(end) if count > 0 && end <= self.count => {
                self.base.checked_add(index).ok_or(EINVAL)
            }
            _ => Err(EINVAL),
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the range is registered, and this is the only place
        // that unregisters it.
        unsafe { bindings::unregister_chrdev_region(self.base, self.count) };
    }
}

/// The C objects of a [`Registration`], laid out so that one `container_of` reaches them all.
#[repr(C)]
struct RawParts {
    /// Parent of `cdev`'s kobject: it is released only after the cdev is, which is how
    /// [`Registration`] learns that nothing references the cdev any more.
    parent: bindings::kobject,
    cdev: bindings::cdev,
    /// Completed by `parent`'s release.
    released: bindings::completion,
}

/// Device numbers of a [`Region`] served by the file operations of `T`.
///
/// Minor `first + i` of the region opens `devices[i]`, once [`Registration::serve`] was called;
/// until then every open fails with `ENXIO`.
///
/// # Invariants
///
/// - `parts.cdev` was initialised with `T`'s file operations, has `parts.parent` as parent and
///   was added with `cdev_add` for `devices.len()` numbers, so `open` finds this registration.
/// - `parts.parent` holds one reference owned by this registration, dropped in [`Drop`], which
///   then waits for `parts.released`: the memory of this registration outlives every open file
///   and every open in progress (each holds a reference to the cdev, hence to the parent).
///
/// Drop it from the module's exit (keep it in the module's state), as LDD3 does with its cdevs:
/// then no file is open and the last reference is dropped by `Drop` itself. Dropped earlier,
/// it still waits safely for the last file, but the kobject release callbacks are module code,
/// and the kernel has no way to wait for a callback to *return* (with
/// `CONFIG_DEBUG_KOBJECT_RELEASE` they run late, from a workqueue).
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Operations> {
    devices: KVec<Arc<T::Device>>,
    /// Set by [`Registration::serve`]: until then `open` hands out no device.
    serving: Atomic<bool>,
    #[pin]
    parts: Opaque<RawParts>,
    _ops: PhantomData<T>,
}

// SAFETY: The C objects are only used through the char-device API, which may be called from any
// thread, and `devices` holds `Send + Sync` values.
unsafe impl<T: Operations> Send for Registration<T> {}

// SAFETY: `&self` gives no access to the C objects, and `devices` holds `Send + Sync` values.
unsafe impl<T: Operations> Sync for Registration<T> {}

/// `release` of the parent kobject: the last reference to the cdev is gone.
///
/// # Safety
///
/// `kobj` must be the `parent` field of a live [`RawParts`] whose `released` is initialised.
unsafe extern "C" fn parent_release(kobj: *mut bindings::kobject) {
    // SAFETY: By the function's safety requirement `kobj` is the `parent` of a `RawParts`.
    let parts = unsafe { container_of!(kobj, RawParts, parent) };
    // SAFETY: `released` is initialised; the registration waits for it before freeing `parts`.
    unsafe { bindings::complete_all(&raw mut (*parts).released) };
}

/// A C structure that C only reads, shared by every thread: a `static` vtable.
///
/// Bindgen's structures hold raw pointers, so they are not [`Sync`] and cannot be `static`
/// themselves; C keeps the address of a vtable such as a `kobj_type`, so it must be a
/// `static` (one address for the program's life), not a `const` (a value that every use
/// copies anew).
#[repr(transparent)]
struct StaticVtable<T>(T);

// SAFETY: A `StaticVtable` is never written after its initialisation (it has no interior
// mutability and C takes it as a `const` pointer), and the pointers in it are to functions and
// to other read-only data, so sharing it between threads is sharing immutable data.
unsafe impl<T> Sync for StaticVtable<T> {}

/// The kobject type of [`RawParts::parent`]: `kobject_init` keeps its address.
static PARENT_KTYPE: StaticVtable<bindings::kobj_type> = StaticVtable(bindings::kobj_type {
    release: Some(parent_release),
    ..pin_init::zeroed()
});

impl<T: Operations> Registration<T> {
    /// Serves minors `first..first + devices.len()` of `region` with `T`'s operations.
    ///
    /// Dropping the registration removes the devices; it waits until every file opened through
    /// it has been released (when a module unloads, none is left: each open file pins the
    /// module).
    ///
    /// # Errors
    ///
    /// `EINVAL` when `first..first + devices.len()` is not inside `region`, and what `cdev_add`
    /// returns (`ENOMEM`).
    pub(crate) fn new(
        region: &Region,
        first: u32,
        devices: KVec<Arc<T::Device>>,
    ) -> impl PinInit<Self, Error> {
        let count = u32::try_from(devices.len()).map_err(|_| EINVAL);
        let base = count.and_then(|count| region.sub_range(first, count).map(|base| (base, count)));
        try_pin_init!(Self {
            devices,
            serving: Atomic::new(false),
            parts <- Opaque::try_ffi_init(move |parts: *mut RawParts| {
                let (base, count) = base?;
                // SAFETY: `parts` points to pinned memory valid for writes, which we zero first
                // (`kobject_init` refuses an object that looks initialised), then initialise.
                // `released` comes first because `PARENT_KTYPE`'s release completes it; the
                // cdev's release drops its reference to `parent`.
                let cdev = unsafe {
                    ptr::write_bytes(parts, 0, 1);
                    let parent = &raw mut (*parts).parent;
                    let cdev = &raw mut (*parts).cdev;
                    bindings::init_completion(&raw mut (*parts).released);
                    bindings::kobject_init(parent, &PARENT_KTYPE.0);
                    bindings::cdev_init(cdev, Vtable::<T, Self>::build());
                    (*cdev).owner = this_module::<T::OwnerModule>().as_ptr();
                    bindings::cdev_set_parent(cdev, parent);
                    cdev
                };
                // SAFETY: `cdev` is initialised. From here on `open` may run; it finds this
                // registration through `container_of`, which the pinning keeps valid.
                let ret = to_result(unsafe { bindings::cdev_add(cdev, base, count) });
                // INVARIANT: On success the cdev is initialised with `T`'s operations and
                // `parent` as its parent, added for `count == devices.len()` numbers, and
                // `parent`'s initial reference is the registration's.
                if ret.is_err() {
                    // SAFETY: `cdev_add` failed without taking a reference to `parent`. Putting
                    // the cdev's only reference releases it, which puts `parent`'s only
                    // reference (ours), which completes `released`: after the wait nothing
                    // refers to `parts` any more.
                    unsafe {
                        bindings::kobject_put(&raw mut (*cdev).kobj);
                        bindings::wait_for_completion(&raw mut (*parts).released);
                    }
                }
                ret
            }),
            _ops: PhantomData,
        })
    }

    /// Lets `open` hand out the devices: before this, the cdev is added but every open of its
    /// numbers fails with `ENXIO`.
    ///
    /// Call it once nothing that can fail is left in the module's init. A failed init drops
    /// the registration, which waits for every open file to be released, so a file opened in
    /// between would hold `insmod` for as long as its owner keeps it open; refused opens only
    /// hold it for the moment they take.
    pub(crate) fn serve(&self) {
        // Release: an open that sees `true` (Acquire) also sees everything the module made
        // before serving, such as what its devices refer to.
        self.serving.store(true, Release);
    }

    /// The registration whose cdev `inode` opened.
    ///
    /// # Safety
    ///
    /// `inode` must be an inode of one of this registration's device numbers, being opened, so
    /// that the caller holds a reference to the cdev.
    unsafe fn from_inode<'a>(inode: *mut bindings::inode) -> &'a Self {
        // SAFETY: The caller's requirement: `inode` is being opened.
        let cdev = unsafe { inode_cdev(inode) };
        // SAFETY: `chrdev_open` set `i_cdev` to our cdev before calling `open`. That cdev is
        // the `cdev` field of a `RawParts` in the `Opaque` of a `Registration<T>`: only `T`'s
        // operations call this. The caller's reference to the cdev keeps the registration
        // alive (see the type invariants).
        unsafe {
            let parts = Opaque::cast_from(container_of!(cdev, RawParts, cdev)).cast_mut();
            &*container_of!(parts, Self, parts)
        }
    }
}

impl<T: Operations> FindDevice<T> for Registration<T> {
    unsafe fn find_device<'a>(
        inode: *mut bindings::inode,
        _file: *mut bindings::file,
    ) -> Option<&'a Arc<T::Device>> {
        // SAFETY: The caller opens one of a `Registration<T>`'s device numbers.
        let registration = unsafe { Self::from_inode(inode) };
        if !registration.serving.load(Acquire) {
            return None;
        }
        // SAFETY: `inode` is valid during open and `parts` is initialised.
        let (rdev, base) = unsafe { ((*inode).i_rdev, (*registration.parts.get()).cdev.dev) };
        rdev.checked_sub(base)
            .and_then(|index| registration.devices.get(index as usize))
    }
}

/// Offsets into C structures that bindgen cannot name stably, measured by the C compiler
/// from `c_checks.c` while the module builds (see `Kbuild`).
mod c_offsets {
    include!("c_checks.rsi");
}

// A smaller `struct inode` than the offset says would mean `c_checks.rsi` came from other
// headers than the bindings: fail the build rather than read past the structure.
const _: () = assert!(
    c_offsets::INODE_I_CDEV + size_of::<*mut bindings::cdev>() <= size_of::<bindings::inode>()
);

/// The cdev that `chrdev_open` found for `inode` (C's `inode->i_cdev`).
///
/// `i_cdev` sits in an anonymous union of `struct inode`, which bindgen names
/// `__bindgen_anon_N` by position. Rather than depend on that numbering, the offset comes
/// from the C compiler (`c_checks.c`), which also checks that the field is a `struct cdev *`.
///
/// Why neither `file->f_op`, nor a lookup by device number, nor a C helper: README.md, "The
/// abstractions, for driver engineers".
///
/// # Safety
///
/// `inode` must be a char-device inode being opened through `chrdev_open` (which sets
/// `i_cdev` and holds a reference to the cdev until the file's release).
unsafe fn inode_cdev(inode: *mut bindings::inode) -> *mut bindings::cdev {
    // SAFETY: The caller's requirement: `inode` is valid, and for a char-device inode the
    // union at `INODE_I_CDEV` holds `i_cdev`, which `chrdev_open` set. The C compiler measured
    // that offset in `struct inode` and checked the field's type, `struct cdev *`; the offset
    // is within the structure (checked above) and pointer-aligned, as a pointer field is.
    unsafe {
        inode
            .cast::<u8>()
            .add(c_offsets::INODE_I_CDEV)
            .cast::<*mut bindings::cdev>()
            .read()
    }
}

#[pinned_drop]
impl<T: Operations> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        let parts = self.parts.get();
        // SAFETY: By the type invariants the cdev was added and the parent holds our reference.
        // `cdev_del` stops new opens; the parent is released once the cdev's last user (an open
        // file or an open in progress) drops its reference, and only then is `released`
        // completed, after which nothing refers to `parts` any more.
        unsafe {
            bindings::cdev_del(&raw mut (*parts).cdev);
            bindings::kobject_put(&raw mut (*parts).parent);
            bindings::wait_for_completion(&raw mut (*parts).released);
        }
    }
}

#[kunit_tests(scull_chrdev)]
mod tests {
    use super::*;
    use kernel::fs::File;

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
            type Ptr = Arc<Counter>;

            fn open(device: &Arc<Counter>, _file: &File) -> Result<Arc<Counter>> {
                Ok(device.clone())
            }
        }

        // A free major with minors 0 and 1, shown as "example" in /proc/devices.
        let region = Region::new(c"example", 0, 0, 2)?;
        // Minor 1 opens the one `Counter`; minor 0 is left unserved.
        let mut devices = KVec::new();
        devices.push(Arc::new(Counter, GFP_KERNEL)?, GFP_KERNEL)?;
        let registration = Registration::<CounterFile>::new(&region, 1, devices);
        let registration = KBox::pin_init(registration, GFP_KERNEL)?;
        // Opens get ENXIO until now: a module serves once nothing in its init can fail.
        registration.serve();
        // The registration goes first: it serves numbers of the region.
        drop(registration);
        drop(region);
        Ok(())
    }

    /// A region is refused where its numbers would not exist.
    #[test]
    fn out_of_range_regions_are_refused() {
        assert_eq!(Region::new(c"example", 0, 0, 0).err(), Some(EINVAL));
        assert_eq!(
            Region::new(c"example", MAX_MAJOR + 1, 0, 1).err(),
            Some(EINVAL)
        );
        assert_eq!(Region::new(c"example", 0, MAX_MINOR, 2).err(), Some(EINVAL));
    }
}
