// SPDX-License-Identifier: GPL-2.0

//! An allocator for memory that a driver holds on behalf of user space, [`UserMemory`], and
//! [`UserVec`], a [`Vec`] that uses it: `kvmalloc` charged to the caller's memory cgroup
//! (`__GFP_ACCOUNT`), failing rather than calling the OOM killer (`__GFP_RETRY_MAYFAIL`), and
//! quiet when it fails (`__GFP_NOWARN`).
//!
//! C header: [`include/linux/slab.h`](srctree/include/linux/slab.h) (`kvmalloc`)
//!
//! Staging for `kernel::alloc`, next to `KVmalloc`.
//!
//! # Examples
//!
//! ```
//! # use crate::user_memory::UserVec;
//! # use kernel::prelude::*;
//! // A quantum of a scull device: charged to the writer's memory cgroup, and `ENOMEM` rather
//! // than the OOM killer when memory runs out.
//! let quantum = UserVec::<u8>::from_elem(0, 4000, GFP_KERNEL)?;
//! assert_eq!(quantum.len(), 4000);
//! # Ok::<(), Error>(())
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_user_memory` runs this example.

use core::{
    alloc::Layout,
    ptr::{
        self,
        NonNull, //
    },
};
use kernel::{
    alloc::{
        allocator::{
            KVmalloc,
            Kmalloc, //
        },
        flags::{
            __GFP_ZERO,
            GFP_KERNEL, //
        },
        AllocError,
        Allocator,
        Flags,
        NumaNode,
        Vec, //
    },
    bindings,
    ffi::c_ulong,
    prelude::*, //
};

/// The allocator of memory held for user space: `kvmalloc`, charged to the caller's memory
/// cgroup, failing rather than calling the OOM killer.
///
/// Every allocation may sleep, so callers pass flags that allow it (`GFP_KERNEL` or
/// `GFP_KERNEL_ACCOUNT`, with or without `__GFP_ZERO` and `__GFP_NOWARN`); other requests get
/// [`AllocError`]. The memory is always accounted, and never placed on a chosen NUMA node.
pub(crate) struct UserMemory;

/// A vector whose memory is held for user space: see [`UserMemory`].
pub(crate) type UserVec<T> = Vec<T, UserMemory>;

/// The raw flags of every allocation of [`UserMemory`], less `__GFP_ZERO`.
const USER_GFP: bindings::gfp_t =
    bindings::GFP_KERNEL_ACCOUNT | bindings::__GFP_NOWARN | 1 << bindings::___GFP_RETRY_MAYFAIL_BIT;

// SAFETY: `realloc` hands every request to `kvrealloc_node_align`, as `KVmalloc` does, with a
// `Kmalloc`-compatible layout:
// - memory it returns stays valid until it is passed back to `kvrealloc_node_align` (to be
//   resized or freed), which only `realloc` does;
// - a pointer to a valid allocation of this allocator was allocated by `kvrealloc_node_align`,
//   which accepts it;
// - it returns memory of at least `layout.size()` bytes aligned to `layout.align()`, and a
//   dangling aligned pointer for a size of zero.
unsafe impl Allocator for UserMemory {
    const MIN_ALIGN: usize = <KVmalloc as Allocator>::MIN_ALIGN;

    unsafe fn realloc(
        ptr: Option<NonNull<u8>>,
        layout: Layout,
        old_layout: Layout,
        flags: Flags,
        nid: NumaNode,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // A size of zero frees, which needs no flags (`Allocator::free` passes none).
        if layout.size() != 0 && (!flags.contains(GFP_KERNEL) || nid != NumaNode::NO_NODE) {
            return Err(AllocError);
        }
        let mut gfp = USER_GFP;
        if flags.contains(__GFP_ZERO) {
            gfp |= bindings::__GFP_ZERO;
        }
        // `kvrealloc_node_align` may use the slab allocator, which aligns an object to its
        // size padded to the alignment.
        let layout = Kmalloc::aligned_layout(layout);
        let old = match ptr {
            Some(ptr) if old_layout.size() != 0 => ptr.as_ptr().cast_const(),
            _ => ptr::null(),
        };
        // SAFETY: `old` is null or, by the caller's guarantee, an allocation of this allocator,
        // that is of `kvrealloc_node_align`; the function frees it when the size is zero.
        let new = unsafe {
            bindings::kvrealloc_node_align(
                old.cast(),
                layout.size(),
                layout.align() as c_ulong,
                gfp,
                bindings::NUMA_NO_NODE,
            )
        };
        let new = if layout.size() == 0 {
            NonNull::new(ptr::without_provenance_mut(layout.align())).ok_or(AllocError)?
        } else {
            NonNull::new(new.cast()).ok_or(AllocError)?
        };
        Ok(NonNull::slice_from_raw_parts(new, layout.size()))
    }
}

#[kunit_tests(scull_user_memory)]
mod tests {
    use super::*;
    use kernel::alloc::flags::{
        GFP_ATOMIC,
        GFP_KERNEL_ACCOUNT, //
    };

    /// The module's example, as it is written there.
    #[test]
    fn example() -> Result {
        // A quantum of a scull device: charged to the writer's memory cgroup, and `ENOMEM` rather
        // than the OOM killer when memory runs out.
        let quantum = UserVec::<u8>::from_elem(0, 4000, GFP_KERNEL)?;
        assert_eq!(quantum.len(), 4000);
        Ok(())
    }

    #[test]
    fn a_vector_grows_and_keeps_its_bytes() -> Result {
        let mut bytes = UserVec::<u8>::new();
        // Past a page, so that the allocation can come from vmalloc as well as the slab.
        for i in 0..10_000u32 {
            bytes.push(i as u8, GFP_KERNEL_ACCOUNT)?;
        }
        assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));
        // Dropped here: kmemleak sees a leak if the memory is not given back.
        Ok(())
    }

    #[test]
    fn zeroed_memory_is_zero() -> Result {
        let quantum = UserVec::<u8>::from_elem(0, 4000, GFP_KERNEL_ACCOUNT)?;
        assert!(quantum.iter().all(|&b| b == 0));
        Ok(())
    }

    #[test]
    fn requests_that_may_not_sleep_are_refused() {
        assert!(UserVec::<u8>::with_capacity(16, GFP_ATOMIC).is_err());
    }
}
