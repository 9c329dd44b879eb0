// SPDX-License-Identifier: GPL-2.0

//! The current task's name, for log lines.
//!
//! Staging for `kernel::task`: Linux 7.3's `Task` has `pid()`, `uid()` and
//! `signal_pending()`, but no accessor for `comm`, which LDD3's drivers print as
//! `current->comm`. [`current_comm`] copies it, as C's `get_task_comm()` does, into a [`Comm`]
//! that formats as text.
//!
//! A file of its own rather than a part of `sched.rs`: that one is about giving up the CPU in
//! long loops (and is built into `scull.ko` only), this one about naming a task in a message
//! (built into `complete.ko`); neither module would use the other's half.
//!
//! # Examples
//!
//! ```ignore
//! pr_info!("process {} ({}) going to sleep\n", current!().pid(), task::current_comm());
//! ```

use kernel::{
    bindings,
    fmt,
    str::BStr, //
};

/// Length of a task's name, with its NUL (`TASK_COMM_LEN`).
const COMM_LEN: usize = bindings::TASK_COMM_LEN as usize;

/// A copy of a task's name (C's `comm`), which displays as text.
pub(crate) struct Comm([u8; COMM_LEN]);

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        fmt::Display::fmt(BStr::from_bytes(&self.0[..len]), f)
    }
}

/// The current task's name (`current->comm`).
pub(crate) fn current_comm() -> Comm {
    let task = kernel::current!().as_ptr();
    // SAFETY: `task` is the current task, alive while it runs this. A concurrent rename may
    // tear the copy, as with C's `%s` of `current->comm`; the last byte is forced to NUL.
    let mut comm: [u8; COMM_LEN] = unsafe { (*task).comm };
    comm[COMM_LEN - 1] = 0;
    Comm(comm)
}
