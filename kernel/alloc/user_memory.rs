// SPDX-License-Identifier: GPL-2.0

//! An allocator for memory that a driver holds on behalf of user space, [`UserMemory`], and
//! [`UserVec`], a [`Vec`] that uses it: charged to the caller's memory cgroup (`__GFP_ACCOUNT`),
//! failing rather than calling the OOM killer, and quiet when it fails (`__GFP_NOWARN`).
//! Above a page it is `kvmalloc` with its own flags for each half: one light `kmalloc` try
//! (`__GFP_NORETRY`), then `vmalloc` (`__GFP_RETRY_MAYFAIL`).
//!
//! C headers: [`include/linux/slab.h`](srctree/include/linux/slab.h) (`kvmalloc`,
//! `krealloc`), [`include/linux/vmalloc.h`](srctree/include/linux/vmalloc.h) (`vrealloc`)
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
    page::PAGE_SIZE,
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

/// The raw flags every allocation of [`UserMemory`] starts from (`__GFP_ZERO` is added on
/// request): accounted, and quiet on failure, which is reported as `ENOMEM` instead.
const USER_GFP: bindings::gfp_t = bindings::GFP_KERNEL_ACCOUNT | bindings::__GFP_NOWARN;

/// Added where failing is the only way out but the OOM killer: it may reclaim, but gives up
/// rather than kill (every `vmalloc`, and `kmalloc` up to a page, where the allocator would
/// otherwise retry for ever). Not a flag of `kernel::alloc::Flags`.
const NO_OOM_KILL: bindings::gfp_t = 1 << bindings::___GFP_RETRY_MAYFAIL_BIT;

/// Added to the `kmalloc` try above a page: one round of reclaim, no compaction retries and
/// no OOM killer, since `vmalloc` can serve the request from order-0 pages instead. (This is
/// what `kvmalloc` does itself, but for it the flags of the `vmalloc` half are the same
/// ones, and `__GFP_RETRY_MAYFAIL` there would make the `kmalloc` try reclaim hard first.)
const LIGHT_TRY: bindings::gfp_t = 1 << bindings::___GFP_NORETRY_BIT;

/// `krealloc_node_align` on any NUMA node.
///
/// # Safety
///
/// `old` must be null or memory that `krealloc_node_align` allocated and has not freed.
unsafe fn krealloc(old: *const u8, size: usize, align: c_ulong, gfp: bindings::gfp_t) -> *mut u8 {
    // SAFETY: The caller's guarantee.
    unsafe { bindings::krealloc_node_align(old.cast(), size, align, gfp, bindings::NUMA_NO_NODE) }
        .cast()
}

/// `vrealloc_node_align` on any NUMA node.
///
/// # Safety
///
/// `old` must be null or memory that `vrealloc_node_align` allocated and has not freed.
unsafe fn vrealloc(old: *const u8, size: usize, align: c_ulong, gfp: bindings::gfp_t) -> *mut u8 {
    // SAFETY: The caller's guarantee.
    unsafe { bindings::vrealloc_node_align(old.cast(), size, align, gfp, bindings::NUMA_NO_NODE) }
        .cast()
}

// SAFETY: `realloc` hands every request to `krealloc_node_align` (slab memory) or
// `vrealloc_node_align` (vmalloc memory), choosing by where the old memory lives, and with a
// `Kmalloc`-compatible layout:
// - memory it returns stays valid until it is passed back to `realloc` (to be resized or
//   freed), where it goes to the function that owns it (`is_vmalloc_addr`);
// - it returns memory of at least `layout.size()` bytes aligned to `layout.align()`, with the
//   old contents up to the smaller of the two sizes, and a dangling aligned pointer for a
//   size of zero.
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
        // The slab allocator aligns an object to its size padded to the alignment.
        let layout = Kmalloc::aligned_layout(layout);
        let (size, align) = (layout.size(), layout.align() as c_ulong);
        let old = match ptr {
            Some(ptr) if old_layout.size() != 0 => ptr.as_ptr().cast_const(),
            _ => ptr::null(),
        };
        // Slab memory goes back to `krealloc_node_align`, vmalloc memory to
        // `vrealloc_node_align`: each function is given only memory of its own, and frees it
        // when the size is zero.
        // SAFETY: `old` is null or valid memory (the caller's guarantee).
        let new = if unsafe { bindings::is_vmalloc_addr(old.cast()) } {
            // SAFETY: `old` is vmalloc memory of this allocator, hence of `vrealloc_node_align`.
            unsafe { vrealloc(old, size, align, gfp | NO_OOM_KILL) }
        } else if size <= PAGE_SIZE {
            // SAFETY: `old` is null or slab memory of this allocator, hence of
            // `krealloc_node_align`.
            unsafe { krealloc(old, size, align, gfp | NO_OOM_KILL) }
        } else {
            // SAFETY: As above.
            let slab = unsafe { krealloc(old, size, align, gfp | LIGHT_TRY) };
            if slab.is_null() {
                // A failed `krealloc_node_align` left `old` as it was.
                // SAFETY: Null asks `vrealloc_node_align` for new memory.
                let vmalloc = unsafe { vrealloc(ptr::null(), size, align, gfp | NO_OOM_KILL) };
                if !vmalloc.is_null() && !old.is_null() {
                    let kept = old_layout.size().min(size);
                    // SAFETY: `old` holds `old_layout.size()` bytes (the caller's guarantee)
                    // and `vmalloc` at least `size`; they are distinct allocations, so they do
                    // not overlap. Then `old`, slab memory nothing refers to any more, is freed.
                    unsafe {
                        ptr::copy_nonoverlapping(old.cast::<u8>(), vmalloc.cast::<u8>(), kept);
                        bindings::kfree(old.cast());
                    }
                }
                vmalloc
            } else {
                slab
            }
        };
        let new = if size == 0 {
            NonNull::new(ptr::without_provenance_mut(layout.align())).ok_or(AllocError)?
        } else {
            NonNull::new(new.cast()).ok_or(AllocError)?
        };
        Ok(NonNull::slice_from_raw_parts(new, size))
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
