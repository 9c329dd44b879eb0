// SPDX-License-Identifier: GPL-2.0

//! Who a task's terminal belongs to: its controlling terminal ([`current_tty_devnum`]) and its
//! session ([`Session`]), which stays distinct from any later session that reuses its number.
//!
//! C headers: [`include/linux/tty.h`](srctree/include/linux/tty.h),
//! [`include/linux/pid.h`](srctree/include/linux/pid.h)
//!
//! Staging for `kernel::tty` and `kernel::pid`.
//!
//! # Examples
//!
//! ```
//! # use crate::tty::{current_tty_devnum, Session};
//! # use kernel::prelude::*;
//! // `None` for a task without a controlling terminal: a daemon, or a kernel thread.
//! if let Some(terminal) = current_tty_devnum() {
//!     pr_info!("controlling terminal {terminal:#x}\n");
//! }
//! // A session is the same however often it is asked for, and alive while a task is in it.
//! let session = Session::current();
//! assert!(session == Session::current());
//! assert!(session.as_ref().is_none_or(Session::is_alive));
//! # Ok::<(), Error>(())
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_tty` runs this example.

use core::ptr::NonNull;
use kernel::{
    bindings,
    sync::rcu, //
};

/// C's `struct tty_struct`, only ever handled through pointers. The bindings declare it (as
/// an opaque type) though not the functions that use it.
type TtyStruct = bindings::tty_struct;

// Prototypes from `include/linux/tty.h` of Linux 7.3, which its bindings leave out; all three
// are exported to modules when CONFIG_TTY=y (without it the header has inline stubs instead,
// and the module fails to load for want of the symbols). Each copies the C declaration its
// comment cites.
unsafe extern "C" {
    // tty.h:346: `struct tty_struct *get_current_tty(void);` (returns a counted reference)
    fn get_current_tty() -> *mut TtyStruct;
    // tty.h:344: `dev_t tty_devnum(struct tty_struct *tty);`
    fn tty_devnum(tty: *mut TtyStruct) -> bindings::dev_t;
    // tty.h:340: `void tty_kref_put(struct tty_struct *tty);`
    fn tty_kref_put(tty: *mut TtyStruct);
}

/// The device number of the current process's controlling terminal, if it has one.
pub(crate) fn current_tty_devnum() -> Option<u32> {
    // SAFETY: Callable from any task; returns null or a reference we must put.
    let tty = unsafe { get_current_tty() };
    if tty.is_null() {
        return None;
    }
    // SAFETY: `tty` is a live tty: we hold a reference, given back right after.
    let devnum = unsafe {
        let devnum = tty_devnum(tty);
        tty_kref_put(tty);
        devnum
    };
    Some(devnum)
}

/// A session: the `struct pid` its tasks share as their session ID, held by reference.
///
/// Two `Session`s are equal when they are the same session. Holding the reference keeps the
/// `struct pid` from being freed, so a later session that reuses the number is a different
/// `struct pid` and never compares equal.
///
/// # Invariants
///
/// `pid` points to a `struct pid` on which this value holds one reference.
pub(crate) struct Session {
    pid: NonNull<bindings::pid>,
}

// SAFETY: A counted `struct pid` may be used and put from any thread.
unsafe impl Send for Session {}

// SAFETY: `&Session` only compares the pointer and calls `pid_task` under RCU, which any
// thread may do concurrently.
unsafe impl Sync for Session {}

impl Session {
    /// The current task's session; `None` in the rare case that it has none.
    pub(crate) fn current() -> Option<Self> {
        // SAFETY: `current` is a live task; `get_task_pid` returns a counted reference to the
        // task's session `struct pid`, or null.
        let pid = unsafe { bindings::get_task_pid(kernel::current!().as_ptr(), SESSION) };
        // INVARIANT: The reference `get_task_pid` took is now this value's.
        NonNull::new(pid).map(|pid| Self { pid })
    }

    /// Whether any task is still in the session.
    pub(crate) fn is_alive(&self) -> bool {
        let _rcu = rcu::read_lock();
        // SAFETY: `self.pid` is a live `struct pid` (type invariant), and `pid_task` is
        // called under the RCU read lock, as it requires; only the pointer is looked at.
        !unsafe { bindings::pid_task(self.pid.as_ptr(), SESSION) }.is_null()
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        self.pid == other.pid
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: By the type invariants this value holds one reference, given back once.
        unsafe { bindings::put_pid(self.pid.as_ptr()) };
    }
}

/// `PIDTYPE_SID`: the kind of `struct pid` link that names a task's session.
const SESSION: bindings::pid_type = bindings::pid_type_PIDTYPE_SID;

#[kernel::prelude::kunit_tests(scull_tty)]
mod tests {
    use super::*;
    use kernel::prelude::*;

    /// The module's example, as it is written there.
    #[test]
    fn example() -> Result {
        // `None` for a task without a controlling terminal: a daemon, or a kernel thread.
        if let Some(terminal) = current_tty_devnum() {
            pr_info!("controlling terminal {terminal:#x}\n");
        }
        // A session is the same however often it is asked for, and alive while a task is in it.
        let session = Session::current();
        assert!(session == Session::current());
        assert!(session.as_ref().is_none_or(Session::is_alive));
        Ok(())
    }
}
