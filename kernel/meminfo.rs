// SPDX-License-Identifier: GPL-2.0

//! How much memory the machine has ([`total_ram`]): C's `totalram_pages()`, in bytes.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)
//!
//! Staging for `kernel::mm`.
//!
//! # Examples
//!
//! ```
//! # use crate::meminfo::total_ram;
//! // scull's default memory limit: a quarter of RAM, which is never none.
//! let default_limit = total_ram() / 4;
//! assert!(default_limit > 0);
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_meminfo` runs this example.

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

#[kernel::prelude::kunit_tests(scull_meminfo)]
mod tests {
    use super::*;

    /// The module's example, as it is written there.
    #[test]
    fn example() {
        // scull's default memory limit: a quarter of RAM, which is never none.
        let default_limit = total_ram() / 4;
        assert!(default_limit > 0);
    }
}
