// SPDX-License-Identifier: GPL-2.0

//! What LDD3's `complete` driver needs and Linux 7.3's Rust API lacks.
//!
//! - [`Completion`]: LDD3's `complete()` (wake one waiter), a wake-all, and a wait that a
//!   signal interrupts. The kernel's `kernel::sync::Completion` offers only `complete_all()` and
//!   an uninterruptible wait, and `reinit_completion()` is an inline C function that bindings
//!   cannot call. Rather than wrap `struct completion` through raw bindings, this one is built
//!   from a [`Mutex`] and a [`CondVar`]: the same semantics in safe code, covered by lockdep.
//! - [`SharedMisc`]: a misc device whose open files all reach one shared value. The misc-device
//!   abstraction hands `open` only the registration; this finds the value next to it.
//! - [`current_comm`]: the current task's name, for log lines.

use core::marker::PhantomData;

use kernel::{
    container_of,
    fs::{
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    new_condvar,
    new_mutex,
    prelude::*,
    sync::{
        CondVar,
        Mutex, //
    },
    types::ForeignOwnable, //
};

/// Counts of a [`Completion`], under its lock.
struct Counts {
    /// `complete()` calls not yet consumed by a waiter.
    done: u32,
    /// Tasks sleeping in [`Completion::wait_interruptible`].
    waiters: u32,
}

/// An event that tasks wait for and that others signal, as `struct completion` in C.
#[pin_data]
pub(crate) struct Completion {
    #[pin]
    counts: Mutex<Counts>,
    #[pin]
    changed: CondVar,
}

impl Completion {
    /// A completion that nothing has signalled yet.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            counts <- new_mutex!(Counts { done: 0, waiters: 0 }, "Completion::counts"),
            changed <- new_condvar!("Completion::changed"),
        })
    }

    /// Lets one waiter through: a sleeping one, or else the next one to arrive (`complete()`).
    pub(crate) fn complete(&self) {
        let mut counts = self.counts.lock();
        counts.done = counts.done.saturating_add(1);
        self.changed.notify_one();
    }

    /// Lets through as many waiters as are sleeping now, and returns how many that is.
    ///
    /// Unlike C's `complete_all()`, the completion does not stay completed for later waiters:
    /// `/dev/complete` must still put the next reader to sleep. A waiter that arrives while the
    /// woken ones are still on their way out may take the place of one of them; the count of
    /// waiters let through is exact.
    pub(crate) fn complete_all(&self) -> u32 {
        let mut counts = self.counts.lock();
        let woken = counts.waiters.saturating_sub(counts.done);
        counts.done = counts.done.saturating_add(woken);
        self.changed.notify_all();
        woken
    }

    /// Sleeps until [`Self::complete`] lets this task through.
    ///
    /// Returns `ERESTARTSYS` when a signal arrives first, so that Ctrl-C ends the wait at once
    /// (the system call is restarted only if the signal's handler asked for it).
    pub(crate) fn wait_interruptible(&self) -> Result {
        let mut counts = self.counts.lock();
        counts.waiters += 1;
        // As C's `do_wait_for_common`: a completion that arrived counts even when a signal
        // arrived too, so that a woken waiter never drops the wakeup meant for it.
        let result = loop {
            if counts.done > 0 {
                counts.done -= 1;
                break Ok(());
            }
            if kernel::current!().signal_pending() {
                break Err(ERESTARTSYS);
            }
            // A pending signal is seen at the top of the loop.
            let _signal_pending = self.changed.wait_interruptible(&mut counts);
        };
        counts.waiters -= 1;
        result
    }
}

/// The file operations of a [`SharedMisc`] device.
///
/// The same operations as [`MiscDevice`], except that `open` also receives the shared value.
pub(crate) trait SharedMiscOps: Sized + 'static {
    /// The value every open file can reach.
    type Shared: Send + Sync;
    /// What an open file keeps as its private data.
    type Ptr: ForeignOwnable + Send + Sync;
    /// Called when the device is opened; the result becomes the file's private data.
    fn open(file: &File, shared: &Self::Shared) -> Result<Self::Ptr>;
    /// Reads from the device.
    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize>;
    /// Writes to the device.
    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize>;
    /// Handles `ioctl(2)`.
    fn ioctl(
        this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        file: &File,
        cmd: u32,
        arg: usize,
    ) -> Result<isize>;
}

/// The misc-device operations behind a [`SharedMisc`]; private, so that only [`SharedMisc`]
/// can register a misc device with them.
struct Ops<T>(PhantomData<T>);

/// A misc device plus a value that all its open files share.
///
/// # Invariants
///
/// `registration` is the only registration of `Ops<T>`'s operations: `Ops` is private to this
/// file and nothing else here registers it. So every `MiscDeviceRegistration<Ops<T>>` lives in
/// the `registration` field of a `SharedMisc<T>`.
#[pin_data]
pub(crate) struct SharedMisc<T: SharedMiscOps> {
    // Declared first so that it is dropped first: no open can start once `shared` goes.
    #[pin]
    registration: MiscDeviceRegistration<Ops<T>>,
    #[pin]
    shared: T::Shared,
}

impl<T: SharedMiscOps> SharedMisc<T> {
    /// Initialises `shared`, then registers a misc device named `name` that reaches it.
    pub(crate) fn register(
        name: &'static CStr,
        shared: impl PinInit<T::Shared>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            shared <- shared,
            registration <- MiscDeviceRegistration::register(MiscDeviceOptions { name }),
        })
    }
}

#[vtable]
impl<T: SharedMiscOps> MiscDevice for Ops<T> {
    type Ptr = T::Ptr;

    fn open(file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<T::Ptr> {
        let misc = core::ptr::from_ref(misc).cast_mut();
        // SAFETY: By the invariants of `SharedMisc`, `misc` is the `registration` field of a
        // `SharedMisc<T>`, which outlives this call: the misc core holds `misc_mtx` during
        // `open`, and deregistration takes it too.
        let device = unsafe { &*container_of!(misc, SharedMisc<T>, registration) };
        T::open(file, &device.shared)
    }

    fn read_iter(kiocb: Kiocb<'_, T::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        T::read_iter(kiocb, iov)
    }

    fn write_iter(kiocb: Kiocb<'_, T::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        T::write_iter(kiocb, iov)
    }

    fn ioctl(
        this: <T::Ptr as ForeignOwnable>::Borrowed<'_>,
        file: &File,
        cmd: u32,
        arg: usize,
    ) -> Result<isize> {
        T::ioctl(this, file, cmd, arg)
    }
}

/// Length of a task's name, with its NUL (`TASK_COMM_LEN`).
pub(crate) const COMM_LEN: usize = 16;

/// The current task's name (`current->comm`), NUL-padded.
pub(crate) fn current_comm() -> [u8; COMM_LEN] {
    let task = kernel::current!().as_ptr();
    // SAFETY: `task` is the current task, alive while it runs this. A concurrent rename may
    // tear the copy, as with C's `%s` of `current->comm`; the last byte is forced to NUL.
    let mut comm: [u8; COMM_LEN] = unsafe { (*task).comm };
    comm[COMM_LEN - 1] = 0;
    comm
}
