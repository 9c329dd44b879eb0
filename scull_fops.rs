// SPDX-License-Identifier: GPL-2.0

//! The file operations of the scull devices: open, read, write, llseek and ioctl on
//! `/dev/scullN`, `scullpriv` and the access-controlled devices.

use crate::chrdev::{
    new_buffer_from_iter,
    Operations,
    Whence, //
};
use crate::scull_access::{
    Guarded,
    PerTerminal,
    Policy, //
};
use crate::scull_ioctl::scull_ioctl;
use crate::scull_mutex::{
    Quantum,
    ScullDev,
    WriteSource, //
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

/// The file operations of the nodes whose files use a scull device: `/dev/scullN`, whose
/// device is `D` itself, and `scullpriv`, whose device depends on the opener.
pub(crate) struct Scull<D>(PhantomData<D>);

/// How a node finds the scull device an opening file is to use.
pub(crate) trait Opener: Send + Sync + Sized + 'static {
    /// The device for `file`, which the current task opens on node `this`.
    fn device(this: &Arc<Self>, file: &File) -> Result<Arc<ScullDev>>;
}

/// `/dev/scullN`: one device.
impl Opener for ScullDev {
    fn device(this: &Arc<Self>, _file: &File) -> Result<Arc<ScullDev>> {
        Ok(this.clone())
    }
}

/// `scullpriv`: the device of the opener's controlling terminal and session.
impl Opener for PerTerminal {
    fn device(this: &Arc<Self>, file: &File) -> Result<Arc<ScullDev>> {
        PerTerminal::device(this, file)
    }
}

/// Moves a file position `pos` forward by `count` bytes that were just transferred.
fn advance(pos: u64, count: usize) -> Result<i64> {
    pos.checked_add(count as u64)
        .and_then(|end| i64::try_from(end).ok())
        .ok_or(EOVERFLOW)
}

/// Opening a scull device: LDD3 starts the device afresh when it is opened for writing only,
/// as `>` does for a file.
fn scull_open(device: &ScullDev, file: &File) {
    if file.flags() & flags::O_ACCMODE == flags::O_WRONLY {
        device.trim();
    }
}

/// `read(2)` on a scull device, from `*pos`, which it advances.
fn scull_read(device: &ScullDev, pos: &mut i64, iov: &mut IovIterDest<'_>) -> Result<usize> {
    let start = u64::try_from(*pos).map_err(|_| EINVAL)?;
    let count = device
        .lock()
        .read(start, iov.len(), |piece| iov.copy_to_iter(piece))?;
    *pos = advance(start, count)?;
    Ok(count)
}

/// `write(2)` on a scull device, at `*pos`, which it advances.
fn scull_write(device: &ScullDev, pos: &mut i64, iov: &mut IovIterSource<'_>) -> Result<usize> {
    let start = u64::try_from(*pos).map_err(|_| EINVAL)?;
    let count = device.lock().write(start, iov.len(), UserData(iov))?;
    *pos = advance(start, count)?;
    Ok(count)
}

/// `lseek(2)` on a scull device: the new position, from the current one `pos`.
fn scull_llseek(device: &ScullDev, pos: i64, offset: i64, whence: Whence) -> Result<i64> {
    let base = match whence {
        Whence::Set => 0,
        Whence::Cur => pos,
        // The size never exceeds `MAX_DEVICE_SIZE`, far below `i64::MAX`.
        Whence::End => i64::try_from(device.lock().size()).map_err(|_| EOVERFLOW)?,
    };
    match base.checked_add(offset) {
        Some(new) if new >= 0 => Ok(new),
        _ => Err(EINVAL),
    }
}

#[vtable]
impl<D: Opener> Operations for Scull<D> {
    type Device = D;
    type Ptr = Arc<ScullDev>;

    fn open(node: &Arc<D>, file: &File) -> Result<Arc<ScullDev>> {
        let device = D::device(node, file)?;
        scull_open(&device, file);
        Ok(device)
    }

    fn read_iter(mut kiocb: Kiocb<'_, Arc<ScullDev>>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let device = kiocb.file();
        scull_read(&device, kiocb.ki_pos_mut(), iov)
    }

    fn write_iter(
        mut kiocb: Kiocb<'_, Arc<ScullDev>>,
        iov: &mut IovIterSource<'_>,
    ) -> Result<usize> {
        let device = kiocb.file();
        scull_write(&device, kiocb.ki_pos_mut(), iov)
    }

    fn llseek(
        device: ArcBorrow<'_, ScullDev>,
        pos: i64,
        offset: i64,
        whence: Whence,
    ) -> Result<i64> {
        scull_llseek(&device, pos, offset, whence)
    }

    fn ioctl(device: ArcBorrow<'_, ScullDev>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        scull_ioctl(device.settings(), cmd, arg)
    }
}

/// The file operations of `scullsingle`, `sculluid` and `scullwuid`: a scull device behind
/// the access policy `P`.
pub(crate) struct Access<P>(PhantomData<P>);

#[vtable]
impl<P: Policy + 'static> Operations for Access<P> {
    type Device = Guarded<P>;
    type Ptr = Arc<Guarded<P>>;

    fn open(guarded: &Arc<Guarded<P>>, file: &File) -> Result<Arc<Guarded<P>>> {
        guarded.policy.enter(file)?;
        scull_open(&guarded.device, file);
        Ok(guarded.clone())
    }

    fn release(guarded: Arc<Guarded<P>>, _file: &File) {
        guarded.policy.leave();
    }

    fn read_iter(
        mut kiocb: Kiocb<'_, Arc<Guarded<P>>>,
        iov: &mut IovIterDest<'_>,
    ) -> Result<usize> {
        let guarded = kiocb.file();
        scull_read(&guarded.device, kiocb.ki_pos_mut(), iov)
    }

    fn write_iter(
        mut kiocb: Kiocb<'_, Arc<Guarded<P>>>,
        iov: &mut IovIterSource<'_>,
    ) -> Result<usize> {
        let guarded = kiocb.file();
        scull_write(&guarded.device, kiocb.ki_pos_mut(), iov)
    }

    fn llseek(
        guarded: ArcBorrow<'_, Guarded<P>>,
        pos: i64,
        offset: i64,
        whence: Whence,
    ) -> Result<i64> {
        scull_llseek(&guarded.device, pos, offset, whence)
    }

    fn ioctl(
        guarded: ArcBorrow<'_, Guarded<P>>,
        _file: &File,
        cmd: u32,
        arg: usize,
    ) -> Result<isize> {
        scull_ioctl(guarded.device.settings(), cmd, arg)
    }
}
