// SPDX-License-Identifier: GPL-2.0

//! Giving up the CPU, and noticing a fatal signal, in long loops.
//!
//! Staging for `kernel::task`: Linux 7.3's Rust API has `might_sleep()` and
//! `Task::signal_pending()`, but neither `cond_resched()` nor `fatal_signal_pending()`, both C
//! macros or inline functions that the bindings cannot call. A loop that may run for seconds
//! in one system call (a 1 GiB write in 16-byte quanta) calls [`cond_resched`] between steps,
//! so that other tasks run on a kernel without full preemption, and stops at
//! [`fatal_signal_pending`], so that `kill -9` ends it, as `generic_perform_write` does.
//!
//! # Examples
//!
//! ```ignore
//! for piece in pieces {
//!     if sched::fatal_signal_pending() {
//!         break; // return what was done so far; the task is dying anyway
//!     }
//!     sched::cond_resched();
//!     copy(piece);
//! }
//! ```

use kernel::{
    bindings,
    task, //
};

/// Lets the scheduler run another task if one should run (C's `cond_resched()`).
///
/// May sleep: never call it in atomic context (checked with `CONFIG_DEBUG_ATOMIC_SLEEP`).
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
    // SAFETY: `task` is the current task, alive while it runs this. As C's
    // `__fatal_signal_pending`, this reads the task's own pending set without its lock: a
    // signal that arrives meanwhile is seen at the next check.
    let pending = unsafe { core::ptr::read_volatile(&raw const (*task).pending.signal.sig[0]) };
    pending & (1 << (bindings::SIGKILL - 1)) != 0
}
