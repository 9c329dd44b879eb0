// SPDX-License-Identifier: GPL-2.0

//! scull, the "Simple Character Utility for Loading Localities" of Linux Device Drivers (LDD3),
//! chapter 3, in Rust.
//!
//! `scull_nr_devs` devices (`/dev/scull0` to `/dev/scull3` by default) share one major, shown as
//! `scull` in `/proc/devices`. Each device is a stretch of kernel memory that grows as it is
//! written and is freed when the device is opened write-only. See `scull_mutex.rs` for how the
//! memory is laid out and locked, and `chrdev.rs` for the char-device plumbing.

mod chrdev;
mod scull_mutex;

use chrdev::{
    Operations,
    Region,
    Registration,
    Whence,
    MAX_MAJOR,
    MAX_MINOR, //
};
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
use scull_mutex::{
    Layout,
    LayoutError,
    ScullDev,
    MAX_QSET,
    MAX_QUANTUM, //
};

module! {
    type: ScullModule,
    name: "scull",
    authors: ["scull-rs developers"],
    description: "LDD3's scull memory-backed char devices, in Rust",
    license: "GPL",
    params: {
        scull_major: i32 {
            default: 0,
            description: "Major number (0: let the kernel choose)",
        },
        scull_minor: i32 {
            default: 0,
            description: "First minor number",
        },
        scull_nr_devs: i32 {
            default: 4,
            description: "Number of scull devices",
        },
        scull_quantum: i32 {
            default: 4000,
            description: "Bytes per quantum",
        },
        scull_qset: i32 {
            default: 1000,
            description: "Quanta per quantum set",
        },
    },
}

/// Most devices one module instance offers: enough to experiment, small enough to stay sane.
const MAX_DEVICES: u32 = 1024;

/// The module parameters, checked.
struct Config {
    major: u32,
    first_minor: u32,
    nr_devs: u32,
    layout: Layout,
}

/// `value` of parameter `name` if it lies in `min..=max`; otherwise says why and fails.
fn checked_param(name: &str, value: i32, min: u32, max: u32) -> Result<u32> {
    match u32::try_from(value) {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => {
            pr_err!("{name}={value} is invalid: it must be between {min} and {max}\n");
            Err(EINVAL)
        }
    }
}

impl Config {
    fn from_params() -> Result<Self> {
        let major = checked_param(
            "scull_major",
            module_parameters::scull_major.value(),
            0,
            MAX_MAJOR,
        )?;
        let first_minor = checked_param(
            "scull_minor",
            module_parameters::scull_minor.value(),
            0,
            MAX_MINOR,
        )?;
        let nr_devs = checked_param(
            "scull_nr_devs",
            module_parameters::scull_nr_devs.value(),
            1,
            MAX_DEVICES.min(MAX_MINOR + 1 - first_minor),
        )?;
        let quantum = checked_param(
            "scull_quantum",
            module_parameters::scull_quantum.value(),
            1,
            MAX_QUANTUM as u32,
        )?;
        let qset = checked_param(
            "scull_qset",
            module_parameters::scull_qset.value(),
            1,
            MAX_QSET as u32,
        )?;
        let layout = Layout::new(quantum as usize, qset as usize).map_err(|err| {
            match err {
                LayoutError::Product => pr_err!(
                    "scull_quantum={quantum} * scull_qset={qset} is too large: one quantum set \
                     must not exceed the largest device size\n"
                ),
                LayoutError::Quantum | LayoutError::Qset => {
                    pr_err!("scull_quantum={quantum}, scull_qset={qset}: invalid layout\n")
                }
            }
            EINVAL
        })?;
        Ok(Self {
            major,
            first_minor,
            nr_devs,
            layout,
        })
    }
}

struct ScullModule {
    _devices: Pin<KBox<Registration<Scull>>>,
    // Dropped after the registration, as fields drop in declaration order.
    _region: Region,
}

impl kernel::Module for ScullModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let config = Config::from_params()?;
        let region = Region::new(c"scull", config.major, config.first_minor, config.nr_devs)?;
        let mut devices = KVec::with_capacity(config.nr_devs as usize, GFP_KERNEL)?;
        for _ in 0..config.nr_devs {
            devices.push(
                Arc::pin_init(ScullDev::new(config.layout), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        let devices = KBox::pin_init(Registration::new(&region, 0, devices), GFP_KERNEL)?;
        pr_info!(
            "major {}, minors {}..{}, quantum {}, qset {}\n",
            region.major(),
            region.first_minor(),
            region.first_minor() + config.nr_devs,
            config.layout.quantum(),
            config.layout.qset()
        );
        Ok(Self {
            _devices: devices,
            _region: region,
        })
    }
}

/// The file operations of `/dev/scullN`.
struct Scull;

/// Moves a file position `pos` forward by `count` bytes that were just transferred.
fn advance(pos: u64, count: usize) -> Result<i64> {
    pos.checked_add(count as u64)
        .and_then(|end| i64::try_from(end).ok())
        .ok_or(EOVERFLOW)
}

#[vtable]
impl Operations for Scull {
    type Device = ScullDev;
    type Ptr = Arc<ScullDev>;

    fn open(device: &Arc<ScullDev>, file: &File) -> Result<Arc<ScullDev>> {
        // LDD3: opening for writing only starts the device afresh, as `>` does for a file.
        if file.flags() & flags::O_ACCMODE == flags::O_WRONLY {
            let mut storage = device.lock();
            let layout = storage.layout();
            storage.trim(layout);
        }
        Ok(device.clone())
    }

    fn read_iter(mut kiocb: Kiocb<'_, Arc<ScullDev>>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let pos = u64::try_from(kiocb.ki_pos()).map_err(|_| EINVAL)?;
        let device = kiocb.file();
        let count = device
            .lock()
            .read(pos, iov.len(), |piece| iov.copy_to_iter(piece))?;
        *kiocb.ki_pos_mut() = advance(pos, count)?;
        Ok(count)
    }

    fn write_iter(
        mut kiocb: Kiocb<'_, Arc<ScullDev>>,
        iov: &mut IovIterSource<'_>,
    ) -> Result<usize> {
        let pos = u64::try_from(kiocb.ki_pos()).map_err(|_| EINVAL)?;
        let device = kiocb.file();
        let count = device
            .lock()
            .write(pos, iov.len(), |piece| iov.copy_from_iter(piece))?;
        *kiocb.ki_pos_mut() = advance(pos, count)?;
        Ok(count)
    }

    fn llseek(
        device: ArcBorrow<'_, ScullDev>,
        pos: i64,
        offset: i64,
        whence: Whence,
    ) -> Result<i64> {
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
}
