// SPDX-License-Identifier: GPL-2.0

//! Classic character devices: a range of device numbers served by one `struct cdev`.
//!
//! Staging for `kernel::chrdev` (next to `kernel::miscdevice`): Linux 7.3 has Rust
//! abstractions for misc devices only, while scull needs what LDD3 teaches: its own major,
//! several minors and `llseek`. This module is the only place in the driver that touches the
//! C char-device API; it offers a safe interface on top of it:
//!
//! - [`Region`] owns a range of device numbers (`alloc_chrdev_region` or
//!   `register_chrdev_region`), shown under its name in `/proc/devices`.
//! - [`Registration`] serves some of those numbers with the file operations of an
//!   [`Operations`] implementation, one shared [`Operations::Device`] per minor.
//! - [`Operations`] and [`Whence`]: the file operations a driver implements, as
//!   `kernel::miscdevice::MiscDevice` does for misc devices.
//!
//! C headers: [`include/linux/cdev.h`](srctree/include/linux/cdev.h),
//! [`include/linux/fs.h`](srctree/include/linux/fs.h).
//!
//! # Examples
//!
//! ```ignore
//! struct Scull;
//!
//! #[vtable]
//! impl Operations for Scull {
//!     type Device = ScullDev;
//!     type Ptr = Arc<ScullDev>;
//!     fn open(device: &Arc<ScullDev>, _file: &File) -> Result<Arc<ScullDev>> {
//!         Ok(device.clone())
//!     }
//!     // read_iter, write_iter, llseek...
//! }
//!
//! let region = Region::new(c"scull", 0, 0, 4)?;           // a free major, minors 0..4
//! let devices = /* KVec of four Arc<ScullDev> */;
//! let registration = KBox::pin_init(Registration::<Scull>::new(&region, 0, devices), GFP_KERNEL)?;
//! // Keep `registration`, then `region`, in the module; drop them in that order at exit.
//! ```

use core::{
    marker::PhantomData,
    ptr, //
};

use kernel::{
    bindings,
    container_of,
    error::{
        to_result,
        VTABLE_DEFAULT_ERROR, //
    },
    ffi::{
        c_int,
        c_long,
        c_uint,
        c_ulong, //
    },
    fs::{
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    module::this_module,
    prelude::*,
    sync::{
        poll::PollTable,
        Arc, //
    },
    types::{
        ForeignOwnable,
        Opaque, //
    }, //
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

/// Where `lseek(2)` measures its offset from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Whence {
    /// `SEEK_SET`: from the start of the device.
    Set,
    /// `SEEK_CUR`: from the file's current position.
    Cur,
    /// `SEEK_END`: from the end of the device's data.
    End,
}

impl Whence {
    fn from_raw(whence: c_int) -> Result<Self> {
        match u32::try_from(whence) {
            Ok(bindings::SEEK_SET) => Ok(Self::Set),
            Ok(bindings::SEEK_CUR) => Ok(Self::Cur),
            Ok(bindings::SEEK_END) => Ok(Self::End),
            _ => Err(EINVAL),
        }
    }
}

/// The file operations of a character device, implemented by a driver.
///
/// Operations a driver leaves out get the kernel's default behaviour: no `llseek` makes the
/// device a stream (`lseek`, `pread` and `pwrite` fail with `ESPIPE`), no `ioctl` gives `ENOTTY`,
/// no `read_iter` or `write_iter` gives `EINVAL`.
#[vtable]
pub(crate) trait Operations: Sized {
    /// The state of one device (one minor), shared by every file that opens it.
    type Device: Send + Sync;

    /// What an open file keeps as its private data.
    type Ptr: ForeignOwnable + Send + Sync;

    /// Called when `device` is opened; the result becomes the file's private data.
    fn open(device: &Arc<Self::Device>, file: &File) -> Result<Self::Ptr>;

    /// Called when the last reference to an open file goes away.
    fn release(this: Self::Ptr, _file: &File) {
        drop(this);
    }

    /// Reads from the device at `kiocb`'s position, advancing it.
    fn read_iter(_kiocb: Kiocb<'_, Self::Ptr>, _iov: &mut IovIterDest<'_>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Writes to the device at `kiocb`'s position, advancing it.
    fn write_iter(_kiocb: Kiocb<'_, Self::Ptr>, _iov: &mut IovIterSource<'_>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Computes the file's new position for `lseek(2)`; `pos` is the current one.
    ///
    /// The abstraction stores the result as the file's position.
    fn llseek(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _pos: i64,
        _offset: i64,
        _whence: Whence,
    ) -> Result<i64> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Handles `ioctl(2)`; 32-bit callers arrive here too, through `compat_ptr_ioctl`.
    fn ioctl(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _cmd: u32,
        _arg: usize,
    ) -> Result<isize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Registers the wait queues `poll(2)` should sleep on in `table` and returns the events
    /// ready now (`POLLIN`, `POLLOUT`...). An error reports `POLLERR`.
    fn poll(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _table: &PollTable<'_>,
    ) -> Result<u32> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Adds the file to (`on`) or removes it from the device's `FasyncQueue` (see
    /// `fasync.rs`): `fcntl(2)`'s `FASYNC` flag. The kernel also calls it with `on == false`
    /// before the file's last `release` if the flag is still set, so a file never stays on a
    /// queue.
    fn fasync(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _fd: i32,
        _on: bool,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
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
/// Minor `first + i` of the region opens `devices[i]`.
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
    pub(crate) fn new(
        region: &Region,
        first: u32,
        devices: KVec<Arc<T::Device>>,
    ) -> impl PinInit<Self, Error> {
        let count = u32::try_from(devices.len()).map_err(|_| EINVAL);
        let base = count.and_then(|count| region.sub_range(first, count).map(|base| (base, count)));
        try_pin_init!(Self {
            devices,
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
                    bindings::cdev_init(cdev, Vtable::<T>::build());
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
/// The alternatives are worse:
///
/// - Finding the registration from `file->f_op`, with a `file_operations` embedded in each
///   registration, is unsound: `__fput` drops the file's cdev reference (`cdev_put`) *before*
///   `fops_put(file->f_op)` reads `f_op->owner` (`fs/file_table.c`), so a registration dropped
///   while a file closes would be freed under that read. Only a module's exit, which waits for
///   the module reference `fops_put` gives back, excludes it, and nothing makes a registration
///   be dropped there.
/// - Looking the registration up by `inode->i_rdev` needs a global, locked map of device
///   numbers to registrations: a copy of the kernel's own `cdev_map`.
/// - A C helper returning `inode->i_cdev`, as `rust/helpers/` would hold upstream, cannot be
///   linked into `scull.ko` (`c_checks.c` says why).
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

/// The `file_operations` of `T`.
struct Vtable<T: Operations>(PhantomData<T>);

/// Whether an iterator's `data_source` is `direction` (`ITER_SOURCE` or `ITER_DEST`).
fn is_iter_direction(data_source: bool, direction: u32) -> bool {
    data_source == (direction != 0)
}

impl<T: Operations> Vtable<T> {
    /// # Safety
    ///
    /// `inode` and `file` must be being opened through `chrdev_open` on a device number of a
    /// [`Registration<T>`].
    unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: The caller opens one of the registration's device numbers.
        let registration = unsafe { Registration::<T>::from_inode(inode) };
        // SAFETY: `inode` is valid during open and `parts` is initialised.
        let (rdev, base) = unsafe { ((*inode).i_rdev, (*registration.parts.get()).cdev.dev) };
        let Some(device) = rdev
            .checked_sub(base)
            .and_then(|index| registration.devices.get(index as usize))
        else {
            return ENXIO.to_errno();
        };
        if !T::HAS_LLSEEK {
            // SAFETY: `inode` and `file` are being opened.
            let ret = unsafe { bindings::stream_open(inode, file) };
            if ret != 0 {
                return ret;
            }
        }
        // SAFETY: `file` is valid for the duration of the call, and no `fdget_pos` region can be
        // active on a file that is still being opened.
        let file_ref = unsafe { File::from_raw_file(file) };
        // The VFS fails an `O_DIRECT` open after `->open` returns unless the file can do
        // direct I/O, which no file of this abstraction can. Refusing it here keeps a driver's
        // `open` from having effects (emptying a device, say) for an open that fails anyway.
        if file_ref.flags() & bindings::O_DIRECT != 0 {
            return EINVAL.to_errno();
        }
        match T::open(device, file_ref) {
            Ok(ptr) => {
                // SAFETY: `chrdev_open` left `private_data` to the driver; from now on it holds
                // a `T::Ptr`, taken back in `release`.
                unsafe { (*file).private_data = ptr.into_foreign() };
                0
            }
            Err(err) => err.to_errno(),
        }
    }

    /// # Safety
    ///
    /// `file` must be a file opened by [`Self::open`], being released.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `open` stored a `T::Ptr` in `private_data`; release takes it back, once.
        let ptr = unsafe { T::Ptr::from_foreign((*file).private_data) };
        // SAFETY: `file` is valid during release and no `fdget_pos` region is active on it.
        T::release(ptr, unsafe { File::from_raw_file(file) });
        0
    }

    /// # Safety
    ///
    /// `kiocb` must belong to a file opened by [`Self::open`]; `iter` must be a valid
    /// destination iterator.
    unsafe extern "C" fn read_iter(
        kiocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: The caller passes a valid iterator.
        if !is_iter_direction(unsafe { (*iter).data_source }, bindings::ITER_DEST) {
            return EINVAL.to_errno() as isize;
        }
        // SAFETY: The file's private data is a `T::Ptr`, as `Kiocb` requires.
        let kiocb = unsafe { Kiocb::from_raw(kiocb) };
        // SAFETY: The caller passes a valid destination iterator: checked just above, which
        // also lets the compiler drop `from_raw`'s assertion of it, a panic path.
        let iov = unsafe { IovIterDest::from_raw(iter) };
        match T::read_iter(kiocb, iov) {
            Ok(count) => count as isize,
            Err(err) => err.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// `kiocb` must belong to a file opened by [`Self::open`]; `iter` must be a valid source
    /// iterator.
    unsafe extern "C" fn write_iter(
        kiocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: The caller passes a valid iterator.
        if !is_iter_direction(unsafe { (*iter).data_source }, bindings::ITER_SOURCE) {
            return EINVAL.to_errno() as isize;
        }
        // SAFETY: The file's private data is a `T::Ptr`, as `Kiocb` requires.
        let kiocb = unsafe { Kiocb::from_raw(kiocb) };
        // SAFETY: The caller passes a valid source iterator: checked just above, which also
        // lets the compiler drop `from_raw`'s assertion of it, a panic path.
        let iov = unsafe { IovIterSource::from_raw(iter) };
        match T::write_iter(kiocb, iov) {
            Ok(count) => count as isize,
            Err(err) => err.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// `file` must be a file opened by [`Self::open`].
    unsafe extern "C" fn llseek(file: *mut bindings::file, offset: i64, whence: c_int) -> i64 {
        let whence = match Whence::from_raw(whence) {
            Ok(whence) => whence,
            Err(err) => return err.to_errno().into(),
        };
        // SAFETY: The private data is a `T::Ptr` until `release`, and the system call holds a
        // reference to the file.
        let this = unsafe { T::Ptr::borrow((*file).private_data) };
        // Char devices get no `f_pos_lock`, so, as in C drivers, a position update here may
        // race with `read`/`write` on a shared file description: volatile accesses keep each
        // one whole. Every operation validates the position it gets, so a lost update is a
        // wrong position, never an unsafe one.
        // SAFETY: `file` is valid for the duration of the call.
        let pos = unsafe { ptr::read_volatile(&raw const (*file).f_pos) };
        match T::llseek(this, pos, offset, whence) {
            Ok(pos) => {
                // SAFETY: As above.
                unsafe { ptr::write_volatile(&raw mut (*file).f_pos, pos) };
                pos
            }
            Err(err) => err.to_errno().into(),
        }
    }

    /// # Safety
    ///
    /// `file` must be a file opened by [`Self::open`].
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: The private data is a `T::Ptr` until `release`.
        let this = unsafe { T::Ptr::borrow((*file).private_data) };
        // SAFETY: `file` is valid during the call and no `fdget_pos` region is active on it.
        let file_ref = unsafe { File::from_raw_file(file) };
        match T::ioctl(this, file_ref, cmd, arg) {
            Ok(ret) => ret as c_long,
            Err(err) => err.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// `file` must be a file opened by [`Self::open`]; `table` null or a valid poll table.
    unsafe extern "C" fn poll(
        file: *mut bindings::file,
        table: *mut bindings::poll_table,
    ) -> bindings::__poll_t {
        // SAFETY: The private data is a `T::Ptr` until `release`.
        let this = unsafe { T::Ptr::borrow((*file).private_data) };
        // SAFETY: `file` is valid during the call and no `fdget_pos` region is active on it.
        let file_ref = unsafe { File::from_raw_file(file) };
        // SAFETY: The caller passes a null or valid table, valid for the call.
        let table = unsafe { PollTable::from_raw(table) };
        T::poll(this, file_ref, &table).unwrap_or(bindings::POLLERR)
    }

    /// # Safety
    ///
    /// `file` must be a file opened by [`Self::open`], not yet released.
    unsafe extern "C" fn fasync(fd: c_int, file: *mut bindings::file, on: c_int) -> c_int {
        // SAFETY: The private data is a `T::Ptr` until `release`, which comes after the
        // kernel's last call here.
        let this = unsafe { T::Ptr::borrow((*file).private_data) };
        // SAFETY: `file` is valid during the call and no `fdget_pos` region is active on it.
        let file_ref = unsafe { File::from_raw_file(file) };
        match T::fasync(this, file_ref, fd, on != 0) {
            Ok(()) => 0,
            Err(err) => err.to_errno(),
        }
    }

    const VTABLE: bindings::file_operations = bindings::file_operations {
        owner: this_module::<T::OwnerModule>().as_ptr(),
        open: Some(Self::open),
        release: Some(Self::release),
        read_iter: if T::HAS_READ_ITER {
            Some(Self::read_iter)
        } else {
            None
        },
        write_iter: if T::HAS_WRITE_ITER {
            Some(Self::write_iter)
        } else {
            None
        },
        llseek: if T::HAS_LLSEEK {
            Some(Self::llseek)
        } else {
            None
        },
        unlocked_ioctl: if T::HAS_IOCTL {
            Some(Self::ioctl)
        } else {
            None
        },
        #[cfg(CONFIG_COMPAT)]
        compat_ioctl: if T::HAS_IOCTL {
            bindings::compat_ptr_ioctl
        } else {
            None
        },
        poll: if T::HAS_POLL { Some(Self::poll) } else { None },
        fasync: if T::HAS_FASYNC {
            Some(Self::fasync)
        } else {
            None
        },
        ..pin_init::zeroed()
    };

    const fn build() -> &'static bindings::file_operations {
        &Self::VTABLE
    }
}
