// SPDX-License-Identifier: GPL-2.0

//! How much memory the machine has.
//!
//! Staging for `kernel::mm`: Linux 7.3's Rust API has no accessor for the machine's RAM, and
//! C's `totalram_pages()` is an inline function that the bindings cannot call. A driver that
//! bounds what users may make it allocate by a share of RAM, as tmpfs bounds its size by
//! default to half of RAM, needs that figure.
//!
//! # Examples
//!
//! ```ignore
//! let default_limit = meminfo::total_ram() / 4;
//! ```

use core::mem::MaybeUninit;
use kernel::bindings;

/// Bytes of RAM the kernel manages (`MemTotal` in `/proc/meminfo`).
pub(crate) fn total_ram() -> u64 {
    let mut info = MaybeUninit::<bindings::sysinfo>::zeroed();
    // SAFETY: `si_meminfo` fills the `struct sysinfo` it is given, which is valid for
    // writes; it needs no lock and can be called from any context that may sleep or not.
    unsafe { bindings::si_meminfo(info.as_mut_ptr()) };
    // SAFETY: Zeroed memory is a valid `struct sysinfo` (plain integers), now filled in.
    let info = unsafe { info.assume_init() };
    let pages = u64::try_from(info.totalram).unwrap_or(u64::MAX);
    pages.saturating_mul(u64::from(info.mem_unit))
}
