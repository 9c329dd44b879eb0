// SPDX-License-Identifier: GPL-2.0

//! The open file of an I/O request ([`KiocbExt::open_file`]), for its flags.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h) (`struct kiocb`'s `ki_filp`)
//!
//! Staging for `kernel::fs::kiocb`, whose `Kiocb::file()` returns only the file's private data.
//!
//! # Examples
//!
//! ```
//! # use crate::kiocb::KiocbExt;
//! # use kernel::{fs::{file::flags, Kiocb}, types::ForeignOwnable};
//! /// Whether a `read(2)` or `write(2)` must not sleep.
//! fn is_nonblocking<T: ForeignOwnable>(kiocb: &Kiocb<'_, T>) -> bool {
//!     kiocb.open_file().flags() & flags::O_NONBLOCK != 0
//! }
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_miscdevice` compiles this example
//! (a suite here would be registered twice, once by each module that builds this file).

use kernel::{
    fs::{
        Kiocb,
        LocalFile, //
    },
    types::ForeignOwnable, //
};

/// What [`Kiocb`] lacks in Linux 7.3.
pub(crate) trait KiocbExt<'a> {
    /// The open file the request is on (`kiocb->ki_filp`), for its flags (`O_NONBLOCK`).
    ///
    /// A [`LocalFile`], not a [`kernel::fs::File`]: `read(2)` and `write(2)` reach a char
    /// device inside an `fdget_pos` region that takes no lock (char devices have no
    /// `FMODE_ATOMIC_POS`).
    fn open_file(&self) -> &'a LocalFile;
}

impl<'a, T: ForeignOwnable> KiocbExt<'a> for Kiocb<'a, T> {
    fn open_file(&self) -> &'a LocalFile {
        // SAFETY: A `Kiocb<'a, _>` is a request in progress for `'a`, whose file is valid and
        // referenced meanwhile; an unlocked `fdget_pos` region on it can only be the system
        // call this thread is making.
        unsafe { LocalFile::from_raw_file((*self.as_raw()).ki_filp) }
    }
}
