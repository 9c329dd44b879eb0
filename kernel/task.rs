// SPDX-License-Identifier: GPL-2.0

//! A task's name, for log lines ([`TaskExt::comm`]): LDD3's `current->comm`.
//!
//! C header: [`include/linux/sched.h`](srctree/include/linux/sched.h) (`struct task_struct`'s
//! `comm`)
//!
//! Staging for `kernel::task`, whose `Task` has no accessor for `comm`.
//!
//! # Examples
//!
//! ```
//! # use crate::task::TaskExt;
//! # use kernel::prelude::*;
//! let (pid, comm) = (current!().pid(), current!().comm());
//! pr_info!("process {pid} ({comm}) going to sleep\n");
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_task` runs this example.

use kernel::{
    bindings,
    fmt,
    str::BStr,
    task::Task, //
};

/// Length of a task's name, with its NUL (`TASK_COMM_LEN`).
const COMM_LEN: usize = bindings::TASK_COMM_LEN as usize;

/// A copy of a task's name (C's `comm`), which displays as text.
pub(crate) struct Comm([u8; COMM_LEN]);

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        // PANIC: `len` is at most `COMM_LEN`, the array's length.
        fmt::Display::fmt(BStr::from_bytes(&self.0[..len]), f)
    }
}

/// What [`Task`] lacks in Linux 7.3.
pub(crate) trait TaskExt {
    /// A copy of the task's name (`task->comm`), as C's `get_task_comm()` makes.
    fn comm(&self) -> Comm;
}

impl TaskExt for Task {
    fn comm(&self) -> Comm {
        let task = self.as_ptr();
        // SAFETY: `&self` keeps the task alive. A concurrent rename may tear the copy, as
        // with C's `%s` of `task->comm`; the last byte is forced to NUL.
        let mut comm: [u8; COMM_LEN] = unsafe { (*task).comm };
        // PANIC: `COMM_LEN` is `TASK_COMM_LEN`, 16.
        comm[COMM_LEN - 1] = 0;
        Comm(comm)
    }
}

#[kernel::prelude::kunit_tests(scull_task)]
mod tests {
    use super::*;
    use kernel::prelude::*;

    /// The module's example, as it is written there.
    #[test]
    fn example() {
        let (pid, comm) = (current!().pid(), current!().comm());
        pr_info!("process {pid} ({comm}) going to sleep\n");
    }
}
