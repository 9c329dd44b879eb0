// SPDX-License-Identifier: GPL-2.0

//! Giving up the CPU ([`cond_resched`]), and noticing that the task is being killed
//! ([`fatal_signal_pending`]), in loops that may run for seconds in one system call.
//!
//! C header: [`include/linux/sched.h`](srctree/include/linux/sched.h),
//! [`include/linux/sched/signal.h`](srctree/include/linux/sched/signal.h)
//!
//! Staging for `kernel::task`, which has `might_sleep()` and `Task::signal_pending()`.
//!
//! # Examples
//!
//! ```
//! # use crate::sched::{cond_resched, fatal_signal_pending};
//! let mut copied = 0u64;
//! for piece in 0..1000u64 {
//!     // A task being killed stops early, with what it has done so far, as
//!     // `generic_perform_write` does.
//!     if fatal_signal_pending() {
//!         break;
//!     }
//!     // Other tasks run meanwhile, on a kernel without full preemption too.
//!     cond_resched();
//!     copied += piece;
//! }
//! assert_eq!(copied, 499_500);
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_sched` runs this example.

use kernel::{
    bindings,
    task, //
};

/// Lets the scheduler run another task if one should run (C's `cond_resched()`).
///
/// May sleep: never call it in atomic context (checked with `CONFIG_DEBUG_ATOMIC_SLEEP`).
// Inlined so that `might_sleep`'s location of the caller is a constant there: an out-of-line
// copy (which the KUnit example's call made rustc emit) turns the debug assertion in building
// that location's C string into a panic path.
#[inline(always)]
#[track_caller]
pub(crate) fn cond_resched() {
    task::might_sleep();
    // SAFETY: `__cond_resched` may be called from any context that may sleep, which
    // `might_sleep` just asserted; it takes no arguments.
    unsafe { bindings::__cond_resched() };
}

/// Whether the current task has a fatal signal pending: it is being killed (C's
/// `fatal_signal_pending(current)`).
pub(crate) fn fatal_signal_pending() -> bool {
    let current = kernel::current!();
    if !current.signal_pending() {
        return false;
    }
    let task = current.as_ptr();
    // PANIC: Index 0 of `sig`, an array of `_NSIG_WORDS` (at least 1) words: the compiler
    // checks a constant index against the array's length.
    // SAFETY: `task` is the current task, alive while it runs this. As C's
    // `__fatal_signal_pending`, this reads the task's own pending set without its lock: a
    // signal that arrives meanwhile is seen at the next check.
    let pending = unsafe { core::ptr::read_volatile(&raw const (*task).pending.signal.sig[0]) };
    pending & (1 << (bindings::SIGKILL - 1)) != 0
}

#[kernel::prelude::kunit_tests(scull_sched)]
mod tests {
    use super::*;

    /// The module's example, as it is written there.
    #[test]
    fn example() {
        let mut copied = 0u64;
        for piece in 0..1000u64 {
            // A task being killed stops early, with what it has done so far, as
            // `generic_perform_write` does.
            if fatal_signal_pending() {
                break;
            }
            // Other tasks run meanwhile, on a kernel without full preemption too.
            cond_resched();
            copied += piece;
        }
        assert_eq!(copied, 499_500);
    }
}
