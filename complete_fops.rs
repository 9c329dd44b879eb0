// SPDX-License-Identifier: GPL-2.0

//! `/dev/complete`'s file operations: LDD3's completion example (chapter 5).
//!
//! `/dev/complete` is a misc device. A read sleeps until a write arrives: each write lets
//! exactly one sleeping reader through, as C's `complete()` does. The woken reader gets a short
//! message, and the next read on the same open file gets end of file, so `cat /dev/complete`
//! sleeps, prints one line when woken, and exits. Ctrl-C ends the sleep at once.
//!
//! With `O_NONBLOCK`, a read that finds no write waiting for it fails with `EAGAIN` instead
//! of sleeping, and `poll(2)` reports `POLLIN` exactly when a read would pass at once (a write
//! is waiting, or the file's read was woken already and the next one is end of file), and
//! `POLLOUT` always: a write never sleeps.
//!
//! The `COMPLETE_IOC_WAKE_ALL` ioctl lets every sleeping reader through at once; as waking
//! readers is what a write does, it needs a file open for writing (`EBADF` otherwise).
//! Unlike C's `complete_all()`, it leaves the next reader to sleep: see
//! [`crate::wake_handoff::WakeHandoff`], which counts the wake-ups.
//!
//! Every read and write is logged, as in LDD3, but at most [`crate::ratelimit::BURST`] lines per
//! 5 seconds: user space must not be able to flood the kernel log.

use crate::{
    file_ops::{
        Operations,
        READABLE,
        WRITABLE, //
    },
    kiocb::KiocbExt,
    ratelimit::RateLimit,
    task::TaskExt,
    wake_handoff::WakeHandoff, //
};
use kernel::{
    fmt,
    fs::{
        file::flags,
        File,
        Kiocb, //
    },
    ioctl::_IO,
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    prelude::*,
    str::CString,
    sync::{
        atomic::{
            Acquire,
            AtomicFlag,
            Release, //
        },
        poll::PollTable,
        Arc,
    }, //
};

/// `ioctl(fd, COMPLETE_IOC_WAKE_ALL)`: wakes every sleeping reader, returns how many.
const COMPLETE_IOC_WAKE_ALL: u32 = _IO('k' as u32, 0x40);

/// What every open file of `/dev/complete` reaches.
#[pin_data]
pub(crate) struct Shared {
    #[pin]
    handoff: WakeHandoff,
    /// Readers and writers are logged through this, so that they cannot flood the log.
    #[pin]
    log_limit: RateLimit,
}

impl Shared {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            handoff <- WakeHandoff::new(),
            log_limit <- RateLimit::new(),
        })
    }

    /// Logs `line` unless too many lines were logged lately.
    fn log(&self, line: fmt::Arguments<'_>) {
        if let Some(suppressed) = self.log_limit.allow() {
            if suppressed > 0 {
                pr_info!("{suppressed} messages suppressed\n");
            }
            pr_info!("{line}");
        }
    }
}

/// An open `/dev/complete`.
pub(crate) struct CompleteFile {
    shared: Arc<Shared>,
    /// Whether a read on this file was woken already: the next one returns end of file.
    woken: AtomicFlag,
}

#[vtable]
impl Operations for CompleteFile {
    type Device = Shared;
    type Ptr = KBox<Self>;

    fn open(shared: &Arc<Shared>, _file: &File) -> Result<KBox<Self>> {
        Ok(KBox::new(
            Self {
                shared: shared.clone(),
                woken: AtomicFlag::new(false),
            },
            GFP_KERNEL,
        )?)
    }

    fn read_iter(kiocb: Kiocb<'_, KBox<Self>>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let this = kiocb.file();
        if this.woken.load(Acquire) || iov.is_empty() {
            return Ok(0);
        }
        let pid = current!().pid();
        let comm = current!().comm();
        // Made before sleeping: once woken, nothing may fail without handing the wakeup back.
        let message = CString::try_from_fmt(fmt!("awoken {pid} ({comm})\n"))?;
        // The bytes without the final NUL (`split_last`, as `to_bytes`' subtraction would be
        // a panic path here).
        let (_, message) = message.to_bytes_with_nul().split_last().ok_or(EINVAL)?;

        let shared = &this.shared;
        if kiocb.open_file().flags() & flags::O_NONBLOCK != 0 {
            if !shared.handoff.try_take() {
                return Err(EAGAIN);
            }
        } else {
            shared.log(fmt!("process {pid} ({comm}) going to sleep\n"));
            shared.handoff.wait_interruptible()?;
        }
        shared.log(fmt!("awoken {pid} ({comm})\n"));

        let copied = iov.copy_to_iter(message.get(..iov.len()).unwrap_or(message));
        if copied == 0 {
            // The reader's buffer is bad: the write it consumed goes to the next reader.
            shared.handoff.complete();
            return Err(EFAULT);
        }
        this.woken.store(true, Release);
        Ok(copied)
    }

    fn write_iter(kiocb: Kiocb<'_, KBox<Self>>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let this = kiocb.file();
        let count = iov.len();
        this.shared.log(fmt!(
            "process {} ({}) awakening the readers...\n",
            current!().pid(),
            current!().comm()
        ));
        // The data itself is of no interest: consume it and let one reader through.
        iov.advance(count);
        this.shared.handoff.complete();
        Ok(count)
    }

    fn poll(this: &CompleteFile, file: &File, table: &PollTable<'_>) -> Result<u32> {
        // A write never sleeps; a read passes at once when a write is banked for it, or when
        // it is end of file.
        let readable = this.shared.handoff.poll(file, table) || this.woken.load(Acquire);
        Ok(if readable {
            READABLE | WRITABLE
        } else {
            WRITABLE
        })
    }

    fn ioctl(this: &CompleteFile, file: &File, cmd: u32, _arg: usize) -> Result<isize> {
        match cmd {
            COMPLETE_IOC_WAKE_ALL => {
                // Waking readers is what writes do: a file opened read-only may not, as
                // write(2) on it fails with EBADF.
                if file.flags() & flags::O_ACCMODE == flags::O_RDONLY {
                    return Err(EBADF);
                }
                let woken = this.shared.handoff.wake_all();
                Ok(isize::try_from(woken).unwrap_or(isize::MAX))
            }
            _ => Err(ENOTTY),
        }
    }
}
