// SPDX-License-Identifier: GPL-2.0

//! The open file of an I/O request.
//!
//! Staging for `kernel::fs::kiocb`: in Linux 7.3, `Kiocb::file()` returns the file's
//! *private data* (what `open` returned), and nothing returns the `struct file` itself, whose
//! flags a driver needs to honour `O_NONBLOCK` in `read_iter` and `write_iter`.
//! [`kiocb_open_file`] returns it.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h) (`struct kiocb`'s `ki_filp`)
//!
//! # Examples
//!
//! ```ignore
//! fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
//!     let nonblocking = kiocb_open_file(&kiocb).flags() & flags::O_NONBLOCK != 0;
//!     let this = kiocb.file(); // the private data
//!     // ...
//! }
//! ```

use kernel::{
    fs::{
        Kiocb,
        LocalFile, //
    },
    types::ForeignOwnable, //
};

/// The open file an I/O request is on (`kiocb->ki_filp`), for its flags (`O_NONBLOCK`).
///
/// A [`LocalFile`], not a [`kernel::fs::File`]: `read(2)` and `write(2)` reach a char device
/// inside an `fdget_pos` region that takes no lock (char devices have no `FMODE_ATOMIC_POS`).
pub(crate) fn kiocb_open_file<'a, T: ForeignOwnable>(kiocb: &Kiocb<'a, T>) -> &'a LocalFile {
    // SAFETY: A `Kiocb<'a, _>` is a request in progress for `'a`, whose file is valid and
    // referenced meanwhile; an unlocked `fdget_pos` region on it can only be the system call
    // this thread is making.
    unsafe { LocalFile::from_raw_file((*kiocb.as_raw()).ki_filp) }
}
