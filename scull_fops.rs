// SPDX-License-Identifier: GPL-2.0

//! The file operations of the scull devices: open, read, write, llseek and ioctl on
//! `/dev/scullN`, `scullpriv` and the access-controlled devices.

use crate::{
    file_ops::{
        Operations,
        Whence, //
    },
    iov_buffer::new_buffer_from_iter,
    scull_access::{
        Guarded,
        PerTerminal,
        Policy, //
    },
    scull_mutex::ScullDev,
    scull_storage::{
        Quantum,
        WriteSource, //
    }, //
};
use core::marker::PhantomData;
use kernel::{
    fs::{
        file::flags,
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    }, //
};

/// The data of a `write`, as a [`WriteSource`].
struct UserData<'a, 'data>(&'a mut IovIterSource<'data>);

impl WriteSource for UserData<'_, '_> {
    fn fill(&mut self, out: &mut [u8]) -> usize {
        self.0.copy_from_iter(out)
    }

    // New quanta are copied into straight away, not zeroed and then overwritten: this is what
    // makes writing into fresh memory as cheap as in LDD3's C code.
    fn fill_new(&mut self, size: usize, at: usize, len: usize) -> Result<(Quantum, usize)> {
        new_buffer_from_iter(self.0, size, at, len, GFP_KERNEL)
    }
}

/// The file operations of every node whose files use a scull device: `/dev/scullN`,
/// `scullpriv`, `scullsingle`, `sculluid` and `scullwuid`. What differs between them, how an
/// opening file finds its device and what closing it gives back, is the [`Node`] `N`.
pub(crate) struct ScullFile<N>(PhantomData<N>);

/// How a node finds the scull device an opening file is to use.
pub(crate) trait Node: Send + Sync + Sized + 'static {
    /// What an open file keeps: the device, or the device with what admitted the file.
    type Open: Send + Sync + 'static;

    /// What the current task, opening `file` on node `this`, gets; an error refuses the open.
    fn open(this: &Arc<Self>, file: &File) -> Result<Arc<Self::Open>>;

    /// The scull device behind an open file.
    fn device(open: &Self::Open) -> &ScullDev;

    /// Called once when an open file goes away; nothing to give back by default.
    fn release(_open: &Self::Open) {}
}

/// `/dev/scullN`: one device.
impl Node for ScullDev {
    type Open = ScullDev;

    fn open(this: &Arc<Self>, _file: &File) -> Result<Arc<ScullDev>> {
        Ok(this.clone())
    }

    fn device(open: &ScullDev) -> &ScullDev {
        open
    }
}

/// `scullpriv`: the device of the opener's controlling terminal and session.
impl Node for PerTerminal {
    type Open = ScullDev;

    fn open(this: &Arc<Self>, file: &File) -> Result<Arc<ScullDev>> {
        PerTerminal::device(this, file)
    }

    fn device(open: &ScullDev) -> &ScullDev {
        open
    }
}

/// `scullsingle`, `sculluid` and `scullwuid`: one device behind the access policy `P`, which
/// admits each open and is told of each release.
impl<P: Policy + 'static> Node for Guarded<P> {
    type Open = Guarded<P>;

    fn open(this: &Arc<Self>, file: &File) -> Result<Arc<Guarded<P>>> {
        this.policy.enter(file)?;
        Ok(this.clone())
    }

    fn device(open: &Guarded<P>) -> &ScullDev {
        &open.device
    }

    fn release(open: &Guarded<P>) {
        open.policy.leave();
    }
}

/// Moves a file position `pos` forward by `count` bytes that were just transferred.
fn advance(pos: u64, count: usize) -> Result<i64> {
    pos.checked_add(count as u64)
        .and_then(|end| i64::try_from(end).ok())
        .ok_or(EOVERFLOW)
}

/// The file operations of a scull device, in LDD3's terms.
impl ScullDev {
    /// Opening the device: LDD3 starts it afresh when it is opened for writing only, as `>`
    /// does for a file.
    ///
    /// # Errors
    ///
    /// `ERESTARTSYS` when a signal arrives while the trim waits for the device's lock.
    fn open(&self, file: &File) -> Result {
        if file.flags() & flags::O_ACCMODE == flags::O_WRONLY {
            self.trim()?;
        }
        Ok(())
    }

    /// `read(2)` from `*pos`, which it advances.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a negative position, `EFAULT` when nothing could be copied out,
    /// `ERESTARTSYS` when a signal arrives while waiting for the lock.
    fn read_iter(&self, pos: &mut i64, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let start = u64::try_from(*pos).map_err(|_| EINVAL)?;
        let count = self.read(start, iov.len(), |piece| iov.copy_to_iter(piece))?;
        *pos = advance(start, count)?;
        Ok(count)
    }

    /// `write(2)` at `*pos`, which it advances.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a negative position, `EFBIG` past the largest size, `ENOSPC` past the
    /// memory limit, `ENOMEM`, `EFAULT` when nothing could be copied in, `ERESTARTSYS` when a
    /// signal arrives while waiting for the lock.
    fn write_iter(&self, pos: &mut i64, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let start = u64::try_from(*pos).map_err(|_| EINVAL)?;
        let count = self.write(start, iov.len(), UserData(iov))?;
        *pos = advance(start, count)?;
        Ok(count)
    }

    /// `lseek(2)`: the new position, from the current one `pos`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a position that would be negative or overflow.
    fn llseek(&self, pos: i64, offset: i64, whence: Whence) -> Result<i64> {
        let base = match whence {
            Whence::Set => 0,
            Whence::Cur => pos,
            // As of the last completed write, as LDD3 reads it: without waiting for a writer
            // that may be stalled in a page fault. The size never exceeds `MAX_DEVICE_SIZE`,
            // far below `i64::MAX`.
            Whence::End => i64::try_from(self.usage().size).map_err(|_| EOVERFLOW)?,
        };
        match base.checked_add(offset) {
            Some(new) if new >= 0 => Ok(new),
            _ => Err(EINVAL),
        }
    }
}

#[vtable]
impl<N: Node> Operations for ScullFile<N> {
    type Device = N;
    type Ptr = Arc<N::Open>;

    fn open(node: &Arc<N>, file: &File) -> Result<Arc<N::Open>> {
        // The node admits the opener first: a refused open must not trim the device.
        let open = N::open(node, file)?;
        if let Err(err) = N::device(&open).open(file) {
            N::release(&open);
            return Err(err);
        }
        Ok(open)
    }

    fn release(open: Arc<N::Open>, _file: &File) {
        N::release(&open);
    }

    fn read_iter(mut kiocb: Kiocb<'_, Arc<N::Open>>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let open = kiocb.file();
        N::device(&open).read_iter(kiocb.ki_pos_mut(), iov)
    }

    fn write_iter(
        mut kiocb: Kiocb<'_, Arc<N::Open>>,
        iov: &mut IovIterSource<'_>,
    ) -> Result<usize> {
        let open = kiocb.file();
        N::device(&open).write_iter(kiocb.ki_pos_mut(), iov)
    }

    fn llseek(open: ArcBorrow<'_, N::Open>, pos: i64, offset: i64, whence: Whence) -> Result<i64> {
        N::device(&open).llseek(pos, offset, whence)
    }

    fn ioctl(open: ArcBorrow<'_, N::Open>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        N::device(&open).settings().ioctl(cmd, arg)
    }
}
