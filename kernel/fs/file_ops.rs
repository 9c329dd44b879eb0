// SPDX-License-Identifier: GPL-2.0

//! A device's file operations, [`Operations`], and the C `file_operations` built from them
//! ([`Vtable`]) for every kind of registration: `chrdev.rs` and `miscdevice.rs` say how `open`
//! finds the device ([`FindDevice`]), and all else is shared.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h) (`struct file_operations`)
//!
//! Staging for `kernel::fs`, out of `kernel::miscdevice`, whose file operations only a misc
//! device can use. The examples of `chrdev.rs` and `miscdevice.rs` implement [`Operations`].

use core::{
    marker::PhantomData,
    ptr, //
};

use kernel::{
    bindings,
    error::VTABLE_DEFAULT_ERROR,
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
    types::ForeignOwnable, //
};

/// What [`Operations::poll`] reports when a read would not sleep: `POLLIN | POLLRDNORM`, as
/// every `poll` that reports input does (`select(2)` and `epoll` read either bit).
pub(crate) const READABLE: u32 = bindings::POLLIN | bindings::POLLRDNORM;

/// What [`Operations::poll`] reports when a write would not sleep: `POLLOUT | POLLWRNORM`.
pub(crate) const WRITABLE: u32 = bindings::POLLOUT | bindings::POLLWRNORM;

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
pub(crate) trait Operations: Sized + 'static {
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
    /// ready now ([`READABLE`], [`WRITABLE`], or both). An error reports `POLLERR`.
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

/// How a registration's `open` finds the device that a file opens.
///
/// Implemented by each kind of registration for the [`Operations`] it registers; its
/// [`Vtable`] calls it first thing in `open`.
pub(crate) trait FindDevice<T: Operations> {
    /// The device that `inode` and `file` open, if the registration has one for them.
    ///
    /// # Safety
    ///
    /// `inode` and `file` must be being opened through a registration of type `Self` with
    /// [`Vtable<T, Self>`]'s file operations, and the registration's device must stay alive
    /// for `'a`, the duration of the `open` call.
    unsafe fn find_device<'a>(
        inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> Option<&'a Arc<T::Device>>;
}

// `IovIterDest` and `IovIterSource` are `#[repr(transparent)]` wrappers of a `struct
// iov_iter` (in an `Opaque`), which the vtable casts to as their `from_raw` does: fail the
// build if that ever stops holding.
const _: () = assert!(
    size_of::<IovIterDest<'static>>() == size_of::<bindings::iov_iter>()
        && align_of::<IovIterDest<'static>>() == align_of::<bindings::iov_iter>()
        && size_of::<IovIterSource<'static>>() == size_of::<bindings::iov_iter>()
        && align_of::<IovIterSource<'static>>() == align_of::<bindings::iov_iter>()
);

/// The `file_operations` of `T`, for a registration of type `F`.
pub(crate) struct Vtable<T: Operations, F: FindDevice<T>>(PhantomData<(T, F)>);

/// Whether an iterator's `data_source` is `direction` (`ITER_SOURCE` or `ITER_DEST`).
fn is_iter_direction(data_source: bool, direction: u32) -> bool {
    data_source == (direction != 0)
}

impl<T: Operations, F: FindDevice<T>> Vtable<T, F> {
    /// # Safety
    ///
    /// `inode` and `file` must be being opened through a registration of type `F` with these
    /// file operations.
    unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: The caller opens a device of a registration of type `F`, which outlives the
        // call.
        let Some(device) = (unsafe { F::find_device(inode, file) }) else {
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
                // SAFETY: `private_data` is the driver's once `find_device` has run (the misc
                // core passes its `miscdevice` there, which `find_device` has read); from now
                // on it holds a `T::Ptr`, taken back in `release`.
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
        // SAFETY: The caller passes a valid destination iterator (its direction is checked
        // just above), used only through this reference during the call, into which the
        // system call lets us write. That is `IovIterDest::from_raw`'s contract; this is its
        // cast, without its assertion of the direction, which would stay in the module as a
        // panic path (`assert_failed`) even where the compiler drops the call to it.
        let iov = unsafe { &mut *iter.cast::<IovIterDest<'_>>() };
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
        // SAFETY: As in `read_iter`, for a source iterator: `IovIterSource::from_raw`'s
        // contract and cast, without its assertion.
        let iov = unsafe { &mut *iter.cast::<IovIterSource<'_>>() };
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

    /// The file operations, for the registration to hand to C.
    pub(crate) const fn build() -> &'static bindings::file_operations {
        &Self::VTABLE
    }
}
