// SPDX-License-Identifier: GPL-2.0

//! A fresh buffer filled from a `write`, [`new_buffer_from_iter`]: the bytes the copy fills are
//! written once, and only the rest is zeroed, as C drivers do with `kmalloc` and
//! `copy_from_user`.
//!
//! C header: [`include/linux/uio.h`](srctree/include/linux/uio.h) (`copy_from_iter`)
//!
//! Staging for `kernel::iov`, whose `IovIterSource` copies only into memory that exists.
//!
//! # Examples
//!
//! ```
//! # use crate::{iov_buffer::new_buffer_from_iter, user_memory::{UserMemory, UserVec}};
//! # use kernel::{iov::IovIterSource, prelude::*};
//! /// A 4000-byte quantum holding `len` written bytes at offset 100, and zeros around them.
//! fn new_quantum(iov: &mut IovIterSource<'_>, len: usize) -> Result<UserVec<u8>> {
//!     let (quantum, copied) = new_buffer_from_iter::<UserMemory>(iov, 4000, 100, len, GFP_KERNEL)?;
//!     if copied == 0 {
//!         return Err(EFAULT);
//!     }
//!     Ok(quantum)
//! }
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_iov_buffer` compiles this example
//! (an `IovIterSource` exists only in a `write_iter`).

use core::mem::MaybeUninit;
use kernel::{
    alloc::{
        Allocator,
        Flags,
        Vec, //
    },
    iov::IovIterSource,
    prelude::*, //
};

/// A new buffer of `size` bytes holding `len` bytes copied from `iov` at offset `at`, and
/// zeros everywhere else.
///
/// The bytes the copy fills are never zeroed first: for a driver that allocates its memory as
/// it is written, zeroing it and then overwriting it would be a second pass over every byte.
/// Returns the buffer and how many bytes were copied, fewer than `len` when user memory
/// faulted; the bytes left uncopied are zero too. `EINVAL` when `at + len` exceeds `size`.
///
/// # Errors
///
/// `EINVAL` when `at + len` exceeds `size`, `ENOMEM` when the buffer cannot be allocated.
pub(crate) fn new_buffer_from_iter<A: Allocator>(
    iov: &mut IovIterSource<'_>,
    size: usize,
    at: usize,
    len: usize,
    flags: Flags,
) -> Result<(Vec<u8, A>, usize)> {
    at.checked_add(len)
        .filter(|&end| end <= size)
        .ok_or(EINVAL)?;
    let mut buffer = Vec::<u8, A>::with_capacity(size, flags)?;
    let memory = buffer.spare_capacity_mut().get_mut(..size).ok_or(ENOMEM)?;
    // `at + len <= size`, checked above: neither split can fail.
    let (head, rest) = memory.split_at_mut_checked(at).ok_or(EINVAL)?;
    let (middle, tail) = rest.split_at_mut_checked(len).ok_or(EINVAL)?;
    let copied = iov.copy_from_iter_raw(middle).len();
    let zero = MaybeUninit::new(0);
    head.fill(zero);
    // The copy filled at most `middle`; the rest of it is zeroed.
    middle.get_mut(copied..).ok_or(EFAULT)?.fill(zero);
    tail.fill(zero);
    // SAFETY: The buffer is empty and its first `size` bytes of capacity were all initialised
    // above: `head`, `middle` (the copy, then zeros) and `tail` cover them.
    unsafe { buffer.inc_len(size) };
    Ok((buffer, copied))
}

#[kunit_tests(scull_iov_buffer)]
mod tests {
    use super::*;
    use crate::user_memory::{
        UserMemory,
        UserVec, //
    };

    /// The module's example, as it is written there.
    #[test]
    fn example() {
        /// A 4000-byte quantum holding `len` written bytes at offset 100, and zeros around them.
        fn new_quantum(iov: &mut IovIterSource<'_>, len: usize) -> Result<UserVec<u8>> {
            let (quantum, copied) =
                new_buffer_from_iter::<UserMemory>(iov, 4000, 100, len, GFP_KERNEL)?;
            if copied == 0 {
                return Err(EFAULT);
            }
            Ok(quantum)
        }
        let _: fn(&mut IovIterSource<'_>, usize) -> Result<UserVec<u8>> = new_quantum;
    }
}
