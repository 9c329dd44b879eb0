// SPDX-License-Identifier: GPL-2.0

//! LDD3's access-control devices (`access.c`, chapter 6): scull devices that decide who may
//! open them.
//!
//! - `scullsingle`: one open file at a time; the next open gets `EBUSY`.
//! - `sculluid`: one user at a time (by real or effective uid); others get `EBUSY` unless
//!   they have `CAP_DAC_OVERRIDE`.
//! - `scullwuid`: like `sculluid`, but other users sleep until the device is free, or get
//!   `EAGAIN` with `O_NONBLOCK`; a signal ends the sleep.
//! - `scullpriv`: a private device for each controlling terminal, as in LDD3, but one that
//!   lives only as long as the terminal's session: see [`PerTerminal`].
//!
//! Once open, each behaves as a scull device.

use crate::{
    capability::capable_dac_override,
    scull_mutex::{
        ScullDev,
        Settings, //
    },
    scull_storage::{
        Reclaim,
        Usage, //
    },
    tty::{
        current_tty_devnum,
        Session, //
    },
};
use core::marker::PhantomData;
use kernel::{
    current,
    fs::{
        file::flags,
        File, //
    },
    new_condvar,
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            AtomicFlag,
            Full,
            Release, //
        },
        Arc,
        CondVar,
        Mutex, //
    },
    task::Kuid, //
};

/// Who may open an access-controlled device.
pub(crate) trait Policy: Send + Sync {
    /// Lets the current task in through `file`, or says why not.
    fn enter(&self, file: &File) -> Result;

    /// A file that [`Policy::enter`] let in was released.
    fn leave(&self);
}

/// A scull device behind a [`Policy`].
#[pin_data]
pub(crate) struct Guarded<P: Policy> {
    #[pin]
    pub(crate) device: ScullDev,
    #[pin]
    pub(crate) policy: P,
}

impl<P: Policy> Guarded<P> {
    pub(crate) fn new(settings: Arc<Settings>, policy: impl PinInit<P>) -> impl PinInit<Self> {
        pin_init!(Self {
            device <- ScullDev::new(settings),
            policy <- policy,
        })
    }
}

/// `scullsingle`: one open file at a time.
pub(crate) struct Single {
    open: AtomicFlag,
}

impl Single {
    pub(crate) fn new() -> Self {
        Self {
            open: AtomicFlag::new(false),
        }
    }
}

impl Policy for Single {
    fn enter(&self, _file: &File) -> Result {
        if self.open.xchg(true, Full) {
            return Err(EBUSY);
        }
        Ok(())
    }

    fn leave(&self) {
        self.open.store(false, Release);
    }
}

/// Who holds a `sculluid` or `scullwuid` device: LDD3's `scull_u_owner` and `scull_u_count`.
struct Holder {
    owner: Option<Kuid>,
    files: usize,
}

impl Holder {
    /// Whether the current task may join the holder: the device is free, the task's real or
    /// effective uid owns it, or the task may override file permissions.
    fn admits_current(&self) -> bool {
        match self.owner {
            None => true,
            Some(owner) => {
                owner == current!().uid() || owner == Kuid::current_euid() || capable_dac_override()
            }
        }
    }

    /// Counts one more file; the first one's opener becomes the owner (by real uid, as LDD3).
    fn join(&mut self) -> Result {
        self.files = self.files.checked_add(1).ok_or(EBUSY)?;
        if self.owner.is_none() {
            self.owner = Some(current!().uid());
        }
        Ok(())
    }

    /// Counts one file less; returns whether the device is now free.
    fn leave(&mut self) -> bool {
        self.files = self.files.saturating_sub(1);
        if self.files == 0 {
            self.owner = None;
        }
        self.files == 0
    }
}

/// What [`OneUser`] does with an opener while another user holds the device.
pub(crate) trait WhenBusy: Send + Sync + 'static {
    /// Whether the opener waits for the device to be free, instead of getting `EBUSY`.
    const WAIT: bool;
}

/// `sculluid`: an opener from another user gets `EBUSY`.
pub(crate) struct Refuse;

impl WhenBusy for Refuse {
    const WAIT: bool = false;
}

/// `scullwuid`: an opener from another user waits (or gets `EAGAIN` with `O_NONBLOCK`).
pub(crate) struct Wait;

impl WhenBusy for Wait {
    const WAIT: bool = true;
}

/// `sculluid` (`OneUser<Refuse>`) and `scullwuid` (`OneUser<Wait>`).
#[pin_data]
pub(crate) struct OneUser<B: WhenBusy> {
    #[pin]
    holder: Mutex<Holder>,
    /// `scullwuid`'s openers wait here for the device to be free.
    #[pin]
    freed: CondVar,
    busy: PhantomData<B>,
}

impl<B: WhenBusy> OneUser<B> {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            holder <- new_mutex!(
                Holder {
                    owner: None,
                    files: 0
                },
                "OneUser::holder"
            ),
            freed <- new_condvar!("scullwuid::freed"),
            busy: PhantomData,
        })
    }
}

impl<B: WhenBusy> Policy for OneUser<B> {
    fn enter(&self, file: &File) -> Result {
        let mut holder = self.holder.lock();
        while !holder.admits_current() {
            if !B::WAIT {
                return Err(EBUSY);
            }
            if file.flags() & flags::O_NONBLOCK != 0 {
                return Err(EAGAIN);
            }
            if self.freed.wait_interruptible(&mut holder) {
                return Err(ERESTARTSYS);
            }
        }
        holder.join()
    }

    fn leave(&self) {
        if self.holder.lock().leave() {
            self.freed.notify_all();
        }
    }
}

/// `scullpriv`: one scull device per controlling terminal, shared by the processes of the
/// session that terminal belongs to.
///
/// LDD3 keys the devices by the terminal's number and keeps them until unload, so the next
/// session that gets the same `/dev/pts/N`, maybe another user's, reads what the last one
/// wrote. Here a device is keyed by terminal *and* session, and is forgotten once no task is
/// left in its session (files still open keep it alive until they close): a new session
/// never sees an earlier one's data. A read-only open of a terminal that has no device gets
/// an empty one of its own and creates nothing. Each user may hold [`MAX_PER_USER`] devices
/// at a time, all users together [`MAX_TERMINALS`]; past that, `ENOSPC`.
#[pin_data]
pub(crate) struct PerTerminal {
    settings: Arc<Settings>,
    /// A fixed table rather than a growable vector: the bound is small, and a `KVec`'s
    /// length arithmetic would compile panic paths into the module.
    #[pin]
    devices: Mutex<[Option<TerminalDevice>; MAX_TERMINALS]>,
}

/// The device of one terminal in one session.
struct TerminalDevice {
    terminal: u32,
    session: Session,
    /// The effective user that created it, for the per-user bound.
    creator: Kuid,
    device: Arc<ScullDev>,
}

/// Most devices `scullpriv` keeps: each costs memory while its session lives.
const MAX_TERMINALS: usize = 256;

/// Most devices one user may hold, so that no user can take every device for themselves.
const MAX_PER_USER: usize = 16;

impl PerTerminal {
    pub(crate) fn new(settings: Arc<Settings>) -> impl PinInit<Self> {
        pin_init!(Self {
            settings,
            devices <- new_mutex!(
                pin_init::init_array_from_fn(|_| None),
                "PerTerminal::devices"
            ),
        })
    }

    /// Forgets the devices of sessions that ended, one at a time, each freed after the table's
    /// lock is dropped: freeing a large device takes long, and every `scullpriv` open waits
    /// for that lock. Says whether it forgot any.
    fn forget_ended_sessions(&self) -> bool {
        let mut forgot = false;
        loop {
            let ended = self
                .devices
                .lock()
                .iter_mut()
                .find(|slot| slot.as_ref().is_some_and(|entry| !entry.session.is_alive()))
                .and_then(Option::take);
            // The lock is dropped: the device goes here, unless a file still holds it.
            if ended.is_none() {
                return forgot;
            }
            forgot = true;
        }
    }

    /// Calls `each` with every device the table holds now: its slot, its terminal's device
    /// number, whether a task is still in its session, and its usage. Devices of ended
    /// sessions are shown too, as long as the table keeps them: they hold memory.
    pub(crate) fn each_device(&self, mut each: impl FnMut(usize, u32, bool, Usage)) {
        for (slot, entry) in self.devices.lock().iter().enumerate() {
            if let Some(entry) = entry {
                each(
                    slot,
                    entry.terminal,
                    entry.session.is_alive(),
                    entry.device.usage(),
                );
            }
        }
    }

    /// The device of the current task's terminal and session for a file opened with `file`'s
    /// flags.
    ///
    /// # Errors
    ///
    /// `EINVAL` without a controlling terminal (as LDD3), `ENOSPC` when the opener or everyone
    /// together holds too many devices, `ENOMEM`.
    pub(crate) fn device(&self, file: &File) -> Result<Arc<ScullDev>> {
        let terminal = current_tty_devnum().ok_or(EINVAL)?;
        let session = Session::current().ok_or(EINVAL)?;
        // Whether or not it freed memory: what matters here is room in the table.
        let _ = self.forget_ended_sessions();
        let mut devices = self.devices.lock();
        if let Some(entry) = devices
            .iter()
            .flatten()
            .find(|entry| entry.terminal == terminal && entry.session == session)
        {
            return Ok(entry.device.clone());
        }
        let new_device = || Arc::pin_init(ScullDev::new(self.settings.clone()), GFP_KERNEL);
        if file.flags() & flags::O_ACCMODE == flags::O_RDONLY {
            // Nothing to read yet: an empty device for this file alone, kept nowhere.
            return new_device();
        }
        let creator = Kuid::current_euid();
        // A saturating fold rather than `count()`, whose overflow check could never fire: there
        // are at most `MAX_TERMINALS` entries.
        let held = devices
            .iter()
            .flatten()
            .filter(|entry| entry.creator == creator)
            .fold(0usize, |held, _| held.saturating_add(1));
        if held >= MAX_PER_USER {
            return Err(ENOSPC);
        }
        let free = devices
            .iter_mut()
            .find(|slot| slot.is_none())
            .ok_or(ENOSPC)?;
        let device = new_device()?;
        *free = Some(TerminalDevice {
            terminal,
            session,
            creator,
            device: device.clone(),
        });
        Ok(device)
    }
}

/// A device whose session ended can never be opened again: when the memory budget runs out,
/// its memory is the first to go, rather than a writer's `ENOSPC` waiting for the next open
/// of `scullpriv`.
impl Reclaim for PerTerminal {
    fn reclaim(&self) -> bool {
        self.forget_ended_sessions()
    }
}
