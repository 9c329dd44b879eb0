// SPDX-License-Identifier: GPL-2.0

//! Read-only `/proc` files on `seq_file`, in the two styles of LDD3 chapter 4: written whole
//! ([`ProcFile::single`]) or one record at a time ([`ProcFile::records`]).
//!
//! C header: [`include/linux/proc_fs.h`](srctree/include/linux/proc_fs.h)
//!
//! Staging for `kernel::proc_fs`.
//!
//! # Examples
//!
//! ```
//! # use crate::proc_fs::{ProcFile, ShowRecords};
//! # use kernel::{prelude::*, seq_file::{seq_print, SeqFile}, sync::Arc};
//! /// Three devices, one line each.
//! struct Devices;
//!
//! impl ShowRecords for Devices {
//!     fn records(&self) -> usize {
//!         3
//!     }
//!
//!     fn show_record(&self, index: usize, m: &SeqFile) {
//!         seq_print!(m, "device {index}\n");
//!     }
//! }
//!
//! // `/proc/example` lists the devices for as long as `file` lives.
//! let file = ProcFile::records(c"example", Arc::new(Devices, GFP_KERNEL)?)?;
//! drop(file);
//! # Ok::<(), Error>(())
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_proc_fs` runs this example.

use core::{
    marker::PhantomData,
    ptr::{
        self,
        NonNull, //
    }, //
};
use kernel::{
    bindings,
    ffi::{
        c_char,
        c_int,
        c_uint,
        c_void, //
    },
    prelude::*,
    seq_file::SeqFile,
    sync::Arc, //
};

/// C's `struct proc_dir_entry`, only ever handled through pointers. The bindings declare it
/// (an opaque type, as `acpi_root_dir` points to one) though not the functions that use it.
type ProcDirEntry = bindings::proc_dir_entry;

/// C's `int (*show)(struct seq_file *, void *)`.
type ShowFn = unsafe extern "C" fn(*mut bindings::seq_file, *mut c_void) -> c_int;

// Prototypes from `include/linux/proc_fs.h` of Linux 7.3 (CONFIG_PROC_FS=y, which x86 cannot
// turn off without CONFIG_EXPERT); all three are exported to modules. Each copies the C
// declaration its comment cites; the types are the bindings' (`umode_t`, `seq_operations`)
// or the C ones (`c_char`, `c_uint`, `c_void`).
//
// `seq_file` and `seq_operations` hold a `struct lock_class_key`, which has no fields where
// lockdep is off (Debian's kernel): rustc then calls the pointers to them not FFI-safe. They
// are only ever pointers, so that lint is wrong here, and it fires on some configs only: an
// `#[expect]` would fail on the others.
#[allow(improper_ctypes)]
unsafe extern "C" {
    // proc_fs.h:105: `struct proc_dir_entry *proc_create_single_data(const char *name,
    //     umode_t mode, struct proc_dir_entry *parent,
    //     int (*show)(struct seq_file *, void *), void *data);`
    fn proc_create_single_data(
        name: *const c_char,
        mode: bindings::umode_t,
        parent: *mut ProcDirEntry,
        show: Option<ShowFn>,
        data: *mut c_void,
    ) -> *mut ProcDirEntry;

    // proc_fs.h:98: `struct proc_dir_entry *proc_create_seq_private(const char *name,
    //     umode_t mode, struct proc_dir_entry *parent, const struct seq_operations *ops,
    //     unsigned int state_size, void *data);`
    fn proc_create_seq_private(
        name: *const c_char,
        mode: bindings::umode_t,
        parent: *mut ProcDirEntry,
        ops: *const bindings::seq_operations,
        state_size: c_uint,
        data: *mut c_void,
    ) -> *mut ProcDirEntry;

    // proc_fs.h:130: `extern void proc_remove(struct proc_dir_entry *);`
    fn proc_remove(entry: *mut ProcDirEntry);
}

/// Read-only for everybody, as `/proc` views of driver state usually are.
const MODE: bindings::umode_t = 0o444;

/// Content of a `/proc` file written whole on every read from its start.
///
/// `seq_file` calls [`ShowAll::show`] again with a larger buffer when the content did not fit,
/// so `show` must be able to run more than once per read.
pub(crate) trait ShowAll: Send + Sync {
    /// Writes the whole file to `m`.
    fn show(&self, m: &SeqFile);
}

/// Content of a `/proc` file made of records that `seq_file` asks for one at a time.
///
/// Between two records `seq_file` may return to user space, so each record is a snapshot of
/// its own; a record may also be asked for more than once.
pub(crate) trait ShowRecords: Send + Sync {
    /// How many records there are now.
    fn records(&self) -> usize;

    /// Writes record `index` to `m`. `index` may be past the end when records have gone since
    /// [`ShowRecords::records`] was asked; then nothing needs to be written.
    fn show_record(&self, index: usize, m: &SeqFile);
}

/// A file in `/proc`, removed when dropped.
///
/// # Invariants
///
/// `entry` is a live proc entry created by this type, whose private data is
/// `Arc::as_ptr(&_data)` and whose callbacks are the ones for `T` below. The entry is removed
/// before `_data` is released.
pub(crate) struct ProcFile<T> {
    entry: NonNull<ProcDirEntry>,
    // Only the C callbacks read it, through the pointer handed to `proc_create_*`.
    _data: Arc<T>,
}

// SAFETY: `entry` is only used by `drop`, and `proc_remove` may be called from any thread;
// `T: Send + Sync` is shared with the callbacks, which run on any thread.
unsafe impl<T: Send + Sync> Send for ProcFile<T> {}

// SAFETY: `&ProcFile` gives access to nothing but `&T`, and `T: Sync`.
unsafe impl<T: Send + Sync> Sync for ProcFile<T> {}

impl<T: Send + Sync> ProcFile<T> {
    /// Wraps what a `proc_create_*` function returned, or fails with `ENOMEM` as C callers do
    /// (the function does not say why it failed: no memory, or the name is already taken).
    fn from_created(entry: *mut ProcDirEntry, data: Arc<T>) -> Result<Self> {
        let entry = NonNull::new(entry).ok_or(ENOMEM)?;
        // INVARIANT: The caller created `entry` with `data` as its private data.
        Ok(Self { entry, _data: data })
    }

    /// The pointer handed to C as the entry's private data.
    fn data_ptr(data: &Arc<T>) -> *mut c_void {
        Arc::as_ptr(data).cast_mut().cast()
    }
}

impl<T: ShowAll> ProcFile<T> {
    /// Creates `/proc/<name>`, whose content is whatever `data.show` writes.
    ///
    /// # Errors
    ///
    /// `ENOMEM` when the entry cannot be made (its name is taken, or memory ran out).
    pub(crate) fn single(name: &CStr, data: Arc<T>) -> Result<Self> {
        // SAFETY: `name` is a NUL-terminated string, copied by the callee. The data pointer
        // stays valid until `drop` has removed the entry, and `show_all::<T>` expects it.
        let entry = unsafe {
            proc_create_single_data(
                name.as_char_ptr(),
                MODE,
                ptr::null_mut(),
                Some(show_all::<T>),
                Self::data_ptr(&data),
            )
        };
        Self::from_created(entry, data)
    }
}

impl<T: ShowRecords> ProcFile<T> {
    /// Creates `/proc/<name>`, whose content is the records of `data`, in order.
    ///
    /// # Errors
    ///
    /// `ENOMEM` when the entry cannot be made (its name is taken, or memory ran out).
    pub(crate) fn records(name: &CStr, data: Arc<T>) -> Result<Self> {
        // SAFETY: As in `single`; `SeqOps::<T>` expects `T` as the data.
        let entry = unsafe {
            proc_create_seq_private(
                name.as_char_ptr(),
                MODE,
                ptr::null_mut(),
                SeqOps::<T>::build(),
                0,
                Self::data_ptr(&data),
            )
        };
        Self::from_created(entry, data)
    }
}

impl<T> Drop for ProcFile<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants `entry` is live. `proc_remove` waits for callbacks in
        // progress and releases files still open, so nothing uses `data` afterwards, and it is
        // released after this function.
        unsafe { proc_remove(self.entry.as_ptr()) };
    }
}

/// `show` of a [`ShowAll`] file.
///
/// # Safety
///
/// `m` must be a `seq_file` opened by `single_open` for an entry of [`ProcFile::single`] with
/// `T`, so that `private` points at its live `T`; no other thread may use `m` meanwhile.
unsafe extern "C" fn show_all<T: ShowAll>(m: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    // SAFETY: `single_open` stored the entry's data in `private`; the entry's `ProcFile` keeps
    // it alive while a callback runs (see its invariants).
    let data = unsafe { &*(*m).private.cast::<T>() };
    // SAFETY: By the function's safety requirement only this thread uses `m` meanwhile.
    data.show(unsafe { SeqFile::from_raw(m) });
    0
}

/// The `seq_operations` of a [`ShowRecords`] file.
///
/// The iterator's cookie is the `T` itself; the record index is `seq_file`'s position, which
/// `seq_file` passes to `start` and `next` as `&m->index` and keeps there during `show`.
struct SeqOps<T>(PhantomData<T>);

impl<T: ShowRecords> SeqOps<T> {
    const OPS: bindings::seq_operations = bindings::seq_operations {
        start: Some(Self::start),
        stop: Some(Self::stop),
        next: Some(Self::next),
        show: Some(Self::show),
    };

    fn build() -> &'static bindings::seq_operations {
        &Self::OPS
    }

    /// The `T` of the entry that `m` was opened on.
    ///
    /// # Safety
    ///
    /// `m` must be a `seq_file` opened by `seq_open` on an entry of [`ProcFile::records`] with
    /// `T`, in one of its callbacks.
    unsafe fn data<'a>(m: *mut bindings::seq_file) -> &'a T {
        // SAFETY: `m->file` is the open file, whose inode is the proc inode; proc copies the
        // entry's data into `i_private` (C's `pde_data`). The entry's `ProcFile` keeps it
        // alive while a callback runs.
        unsafe { &*(*(*(*m).file).f_inode).i_private.cast::<T>() }
    }

    /// The cookie for record `pos`, or null past the last record.
    ///
    /// # Safety
    ///
    /// As for [`Self::data`].
    unsafe fn at(m: *mut bindings::seq_file, pos: bindings::loff_t) -> *mut c_void {
        // SAFETY: The caller's requirement.
        let data = unsafe { Self::data(m) };
        match usize::try_from(pos) {
            Ok(index) if index < data.records() => ptr::from_ref(data).cast_mut().cast(),
            _ => ptr::null_mut(),
        }
    }

    /// # Safety
    ///
    /// Called by `seq_file` only, with `m` opened as for [`Self::data`] and `pos` valid.
    unsafe extern "C" fn start(
        m: *mut bindings::seq_file,
        pos: *mut bindings::loff_t,
    ) -> *mut c_void {
        // SAFETY: The function's safety requirement.
        unsafe { Self::at(m, *pos) }
    }

    /// # Safety
    ///
    /// As for [`Self::start`].
    unsafe extern "C" fn next(
        m: *mut bindings::seq_file,
        _v: *mut c_void,
        pos: *mut bindings::loff_t,
    ) -> *mut c_void {
        // `seq_file` wants the position advanced even past the end. It cannot overflow:
        // positions stop one past the last record, and there are at most `usize::MAX`.
        // SAFETY: The function's safety requirement.
        unsafe {
            *pos = (*pos).saturating_add(1);
            Self::at(m, *pos)
        }
    }

    /// Nothing to undo: `start` takes no lock and no reference.
    extern "C" fn stop(_m: *mut bindings::seq_file, _v: *mut c_void) {}

    /// # Safety
    ///
    /// Called by `seq_file` only, with `m` opened as for [`Self::data`], and `v` returned by
    /// `start` or `next`, hence not null.
    unsafe extern "C" fn show(m: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
        // SAFETY: The function's safety requirement.
        let (data, pos) = unsafe { (Self::data(m), (*m).index) };
        if let Ok(index) = usize::try_from(pos) {
            // SAFETY: `seq_file` holds `m->lock` around its callbacks: no other thread uses
            // `m` meanwhile.
            data.show_record(index, unsafe { SeqFile::from_raw(m) });
        }
        0
    }
}

#[kunit_tests(scull_proc_fs)]
mod tests {
    use super::*;
    use kernel::seq_file::seq_print;

    /// The module's example, as it is written there.
    #[test]
    fn example() -> Result {
        /// Three devices, one line each.
        struct Devices;

        impl ShowRecords for Devices {
            fn records(&self) -> usize {
                3
            }

            fn show_record(&self, index: usize, m: &SeqFile) {
                seq_print!(m, "device {index}\n");
            }
        }

        // `/proc/example` lists the devices for as long as `file` lives.
        let file = ProcFile::records(c"example", Arc::new(Devices, GFP_KERNEL)?)?;
        drop(file);
        Ok(())
    }
}
