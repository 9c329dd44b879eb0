// SPDX-License-Identifier: GPL-2.0

//! A counted wake-up handoff, [`WakeHandoff`]: each [`complete`](WakeHandoff::complete) lets
//! one waiter through, now or when it comes, and [`wake_all`](WakeHandoff::wake_all) lets
//! through only the tasks sleeping now.
//!
//! C header: [`include/linux/completion.h`](srctree/include/linux/completion.h) (the semantics
//! of `complete()`; built on [`Mutex`] and [`PollCondVar`], not on `struct completion`)
//!
//! Staging for `kernel::sync`, next to `kernel::sync::Completion`.
//!
//! # Examples
//!
//! ```
//! # use crate::wake_handoff::WakeHandoff;
//! # use kernel::prelude::*;
//! let handoff = KBox::pin_init(WakeHandoff::new(), GFP_KERNEL)?;
//! // A writer's wake-up, banked while no reader sleeps...
//! handoff.complete();
//! // ... lets the next reader through at once, and only that one.
//! handoff.wait_interruptible()?;
//! assert!(!handoff.try_take());
//! // Nobody sleeps now: waking them all wakes nobody, and banks nothing.
//! assert_eq!(handoff.wake_all(), 0);
//! assert!(!handoff.try_take());
//! # Ok::<(), Error>(())
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_wake_handoff` runs this example.

use kernel::{
    fs::File,
    new_mutex,
    new_poll_condvar,
    prelude::*,
    sync::{
        poll::{
            PollCondVar,
            PollTable, //
        },
        Mutex, //
    }, //
};

/// The counts of a [`WakeHandoff`]: banked wake-ups and sleepers, without the sleeping.
///
/// A waiter [`arrive`](Self::arrive)s, then tries to [`pass`](Self::pass) (sleeping between
/// tries while it cannot), then [`leave`](Self::leave)s, all under the handoff's lock.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    /// Wake-ups handed over and not yet taken by a waiter.
    banked: u32,
    /// Waiters that arrived and have not left.
    sleepers: u32,
}

impl Counts {
    const fn new() -> Self {
        Self {
            banked: 0,
            sleepers: 0,
        }
    }

    /// Banks one wake-up (`complete()`).
    fn complete(&mut self) {
        self.banked = self.banked.saturating_add(1);
    }

    /// Banks one wake-up for each sleeper that has none yet, and returns how many that is.
    fn wake_all(&mut self) -> u32 {
        let woken = self.sleepers.saturating_sub(self.banked);
        self.banked = self.banked.saturating_add(woken);
        woken
    }

    /// A waiter starts waiting.
    fn arrive(&mut self) {
        self.sleepers = self.sleepers.saturating_add(1);
    }

    /// Whether a wake-up is banked, which the next [`pass`](Self::pass) would take.
    fn passable(&self) -> bool {
        self.banked > 0
    }

    /// Takes a banked wake-up, if there is one: for a waiter that [`arrive`](Self::arrive)d,
    /// or for one that will not sleep.
    fn pass(&mut self) -> bool {
        if self.banked == 0 {
            return false;
        }
        self.banked -= 1;
        true
    }

    /// A waiter stops waiting, woken or not.
    fn leave(&mut self) {
        self.sleepers = self.sleepers.saturating_sub(1);
    }
}

/// Wake-ups handed from tasks that signal to tasks that wait: see the module documentation.
#[pin_data]
pub(crate) struct WakeHandoff {
    #[pin]
    counts: Mutex<Counts>,
    /// Waiters sleep here, and `poll(2)` callers too. Waiters wait exclusively and pollers
    /// do not, so `notify_one` wakes one waiter and every poller: a poller never takes the
    /// place of the waiter a wake-up is for.
    #[pin]
    changed: PollCondVar,
}

impl WakeHandoff {
    /// A handoff with no wake-up banked and nobody waiting.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            counts <- new_mutex!(Counts::new(), "WakeHandoff::counts"),
            changed <- new_poll_condvar!("WakeHandoff::changed"),
        })
    }

    /// Lets one waiter through: a sleeping one, or else the next one to arrive (`complete()`).
    pub(crate) fn complete(&self) {
        self.counts.lock().complete();
        self.changed.notify_one();
    }

    /// Lets through as many waiters as are sleeping now, and returns how many that is.
    ///
    /// Unlike C's `complete_all()`, nothing stays done for later waiters: `/dev/complete` must
    /// still put the next reader to sleep. A waiter that arrives while the woken ones are still
    /// on their way out may take the place of one of them; the count of waiters let through is
    /// exact.
    pub(crate) fn wake_all(&self) -> u32 {
        let woken = self.counts.lock().wake_all();
        self.changed.notify_all();
        woken
    }

    /// Takes a banked wake-up without sleeping: whether there was one.
    ///
    /// Like a waiter that arrives while woken ones are on their way out (see
    /// [`WakeHandoff::wake_all`]), it may take a wake-up that a sleeper was woken for; that
    /// sleeper then sleeps on, and the count of tasks let through stays exact.
    pub(crate) fn try_take(&self) -> bool {
        self.counts.lock().pass()
    }

    /// Adds `file`'s poll to the tasks woken when a wake-up is banked, and returns whether one
    /// is banked now: whether a waiter arriving now would pass at once.
    pub(crate) fn poll(&self, file: &File, table: &PollTable<'_>) -> bool {
        // Registered before the check, so that a wake-up banked in between still wakes it.
        table.register_wait(file, &self.changed);
        self.counts.lock().passable()
    }

    /// Sleeps until a wake-up is handed to this task.
    ///
    /// Returns `ERESTARTSYS` when a signal arrives first, so that Ctrl-C ends the wait at once
    /// (the system call is restarted only if the signal's handler asked for it).
    ///
    /// # Errors
    ///
    /// `ERESTARTSYS` when a signal arrives before a wake-up is handed over.
    pub(crate) fn wait_interruptible(&self) -> Result {
        let mut counts = self.counts.lock();
        counts.arrive();
        // As C's `do_wait_for_common`: a wake-up that arrived counts even when a signal
        // arrived too, so that a woken waiter never drops the wake-up meant for it.
        let result = loop {
            if counts.pass() {
                break Ok(());
            }
            if kernel::current!().signal_pending() {
                break Err(ERESTARTSYS);
            }
            // A pending signal is seen at the top of the loop.
            let _signal_pending = self.changed.wait_interruptible(&mut counts);
        };
        counts.leave();
        result
    }
}

#[kunit_tests(scull_wake_handoff)]
mod tests {
    use super::*;

    /// The module's example, as it is written there.
    #[test]
    fn example() -> Result {
        let handoff = KBox::pin_init(WakeHandoff::new(), GFP_KERNEL)?;
        // A writer's wake-up, banked while no reader sleeps...
        handoff.complete();
        // ... lets the next reader through at once, and only that one.
        handoff.wait_interruptible()?;
        assert!(!handoff.try_take());
        // Nobody sleeps now: waking them all wakes nobody, and banks nothing.
        assert_eq!(handoff.wake_all(), 0);
        assert!(!handoff.try_take());
        Ok(())
    }

    /// `n` waiters arrive and find no wake-up: they sleep.
    fn sleepers(n: u32) -> Counts {
        let mut counts = Counts::new();
        for _ in 0..n {
            counts.arrive();
            assert!(!counts.pass());
        }
        counts
    }

    #[test]
    fn a_wake_up_before_any_waiter_is_banked() {
        let mut counts = Counts::new();
        counts.complete();
        counts.arrive();
        assert!(counts.pass());
        counts.leave();
        // Taken: the next waiter sleeps.
        counts.arrive();
        assert!(!counts.pass());
    }

    #[test]
    fn each_complete_lets_exactly_one_waiter_through() {
        let mut counts = sleepers(3);
        counts.complete();
        counts.complete();
        assert!(counts.pass());
        assert!(counts.pass());
        assert!(!counts.pass());
    }

    #[test]
    fn wake_all_wakes_the_sleepers_and_returns_their_number() {
        let mut counts = sleepers(3);
        assert_eq!(counts.wake_all(), 3);
        for _ in 0..3 {
            assert!(counts.pass());
            counts.leave();
        }
        assert_eq!(counts, Counts::new());
    }

    #[test]
    fn wake_all_does_not_stay_done() {
        let mut counts = sleepers(1);
        assert_eq!(counts.wake_all(), 1);
        assert!(counts.pass());
        counts.leave();
        // Unlike `complete_all()`, a later waiter sleeps.
        counts.arrive();
        assert!(!counts.pass());
    }

    #[test]
    fn wake_all_counts_only_sleepers_without_a_wake_up() {
        let mut counts = sleepers(3);
        counts.complete();
        assert_eq!(counts.wake_all(), 2);
        for _ in 0..3 {
            assert!(counts.pass());
        }
        assert!(!counts.pass());
    }

    #[test]
    fn wake_all_with_nobody_sleeping_wakes_and_banks_nothing() {
        let mut counts = Counts::new();
        assert_eq!(counts.wake_all(), 0);
        assert_eq!(counts, Counts::new());
    }

    #[test]
    fn banked_wake_ups_beyond_the_sleepers_wait_for_later_waiters() {
        let mut counts = sleepers(1);
        counts.complete();
        counts.complete();
        assert_eq!(counts.wake_all(), 0);
        assert!(counts.pass());
        counts.leave();
        counts.arrive();
        assert!(counts.pass());
    }

    #[test]
    fn a_waiter_that_will_not_sleep_takes_only_a_banked_wake_up() {
        let mut counts = Counts::new();
        assert!(!counts.passable());
        assert!(!counts.pass());
        counts.complete();
        assert!(counts.passable());
        assert!(counts.pass());
        assert!(!counts.passable());
        assert_eq!(counts, Counts::new());
    }
}
