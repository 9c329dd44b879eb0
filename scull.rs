// SPDX-License-Identifier: GPL-2.0

//! scull, the "Simple Character Utility for Loading Localities" of Linux Device Drivers (LDD3),
//! chapters 3 to 6, in Rust: `/dev/scull0..3`, scullpipe and the access-controlled devices.
//!
//! This file is the module: its registrations, in the order they are made. The drivers'
//! files sit beside it, named `scull_*.rs`; the abstractions they are built on sit under
//! `kernel/`, where each would land in `rust/kernel/`.

mod scull_access;
mod scull_fops;
mod scull_ioctl;
mod scull_layout;
mod scull_mutex;
mod scull_params;
mod scull_pipe;
mod scull_proc;
mod scull_storage;

#[path = "kernel/capability.rs"]
mod capability;
#[path = "kernel/chrdev.rs"]
mod chrdev;
#[path = "kernel/fs/fasync.rs"]
mod fasync;
#[path = "kernel/fs/file_ops.rs"]
mod file_ops;
#[path = "kernel/sync/interruptible_mutex.rs"]
mod interruptible_mutex;
#[path = "kernel/iov_buffer.rs"]
mod iov_buffer;
#[path = "kernel/fs/kiocb.rs"]
mod kiocb;
#[path = "kernel/meminfo.rs"]
mod meminfo;
#[path = "kernel/proc_fs.rs"]
mod proc_fs;
#[path = "kernel/sched.rs"]
mod sched;
#[path = "kernel/tty.rs"]
mod tty;
#[path = "kernel/alloc/user_memory.rs"]
mod user_memory;

use chrdev::{
    Region,
    Registration, //
};
use file_ops::Operations;
use kernel::{
    prelude::*,
    sync::Arc, //
};
use proc_fs::ProcFile;
use scull_access::{
    Guarded,
    OneUser,
    PerTerminal,
    Refuse,
    Single,
    Wait, //
};
use scull_fops::ScullFile;
use scull_mutex::{
    ScullDev,
    Settings, //
};
use scull_params::{
    Config,
    ACCESS_DEVICES, //
};
use scull_pipe::{
    PipeDev,
    ScullPipe, //
};
use scull_proc::{
    MemoryView,
    PipeView, //
};
use scull_storage::{
    MemoryBudget,
    ReclaimOnPressure, //
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
        scull_p_nr_devs: i32 {
            default: 4,
            description: "Number of scullpipe devices",
        },
        scull_p_buffer: i32 {
            default: 4000,
            description: "Bytes each scullpipe device buffers",
        },
        scull_mem_limit: u64 {
            default: 0,
            description: "Bytes of memory all scull devices may hold together \
                          (0: a quarter of RAM)",
        },
    },
}

#[pin_data]
struct ScullModule {
    // Fields drop in declaration order: the reclaimer first (it breaks the cycle of the
    // budget holding scullpriv, which holds the budget), then the views, the device numbers
    // last. (If init fails part way, pin-init drops what it made in reverse order of making
    // it, which also leaves the region for last.)
    _reclaim: ReclaimOnPressure,
    _scullmem: ProcFile<MemoryView>,
    _scullseq: ProcFile<MemoryView>,
    _scullpipe: ProcFile<PipeView>,
    #[pin]
    _devices: Registration<ScullFile<ScullDev>>,
    #[pin]
    _pipes: Registration<ScullPipe>,
    #[pin]
    _single: Registration<ScullFile<Guarded<Single>>>,
    #[pin]
    _uid: Registration<ScullFile<Guarded<OneUser<Refuse>>>>,
    #[pin]
    _wuid: Registration<ScullFile<Guarded<OneUser<Wait>>>>,
    #[pin]
    _priv: Registration<ScullFile<PerTerminal>>,
    _region: Region,
}

/// Minor `index` of `region`, served with `T`'s operations on `device` alone.
fn register_one<T: Operations>(
    region: &Region,
    index: u32,
    device: Arc<T::Device>,
) -> Result<impl PinInit<Registration<T>, Error>> {
    let mut devices = KVec::with_capacity(1, GFP_KERNEL)?;
    devices.push_within_capacity(device).map_err(|_| ENOMEM)?;
    Ok(Registration::new(region, index, devices))
}

impl kernel::InPlaceModule for ScullModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // The devices are made first, outside the module's memory; then the module is built in
        // place, with its registrations pinned in it rather than each in a box of its own.
        pin_init::pin_init_scope(move || {
            let config = Config::from_params()?;
            let minors = config.minors;
            let region = Region::new(c"scull", config.major, config.first_minor, minors)?;
            let budget = Arc::pin_init(MemoryBudget::new(config.mem_limit), GFP_KERNEL)?;
            let settings = Arc::pin_init(
                Settings::new(config.layout, config.pipe_buffer, budget.clone()),
                GFP_KERNEL,
            )?;
            // Every vector is filled within the capacity it was allocated with:
            // `push_within_capacity` neither grows it nor has length arithmetic to overflow.
            // (It cannot fail here; if it did, that would be ENOMEM.)
            let mut devices = KVec::with_capacity(config.nr_devs as usize, GFP_KERNEL)?;
            let mut viewed = KVec::with_capacity(config.nr_devs as usize, GFP_KERNEL)?;
            for _ in 0..config.nr_devs {
                let device = Arc::pin_init(ScullDev::new(settings.clone()), GFP_KERNEL)?;
                viewed
                    .push_within_capacity(device.clone())
                    .map_err(|_| ENOMEM)?;
                devices.push_within_capacity(device).map_err(|_| ENOMEM)?;
            }
            let devices = Registration::new(&region, 0, devices);
            let mut pipes = KVec::with_capacity(config.pipes as usize, GFP_KERNEL)?;
            let mut viewed_pipes = KVec::with_capacity(config.pipes as usize, GFP_KERNEL)?;
            for _ in 0..config.pipes {
                let pipe = Arc::pin_init(PipeDev::new(settings.clone()), GFP_KERNEL)?;
                viewed_pipes
                    .push_within_capacity(pipe.clone())
                    .map_err(|_| ENOMEM)?;
                pipes.push_within_capacity(pipe).map_err(|_| ENOMEM)?;
            }
            let pipes = Registration::new(&region, config.nr_devs, pipes);
            // The access devices take the last minors. Every index below is below `minors`,
            // which `from_params` checked, so the saturating additions never saturate.
            let access = minors.saturating_sub(ACCESS_DEVICES);
            let single_device =
                Arc::pin_init(Guarded::new(settings.clone(), Single::new()), GFP_KERNEL)?;
            let uid_device =
                Arc::pin_init(Guarded::new(settings.clone(), OneUser::new()), GFP_KERNEL)?;
            let wuid_device =
                Arc::pin_init(Guarded::new(settings.clone(), OneUser::new()), GFP_KERNEL)?;
            let private_devices = Arc::pin_init(PerTerminal::new(settings.clone()), GFP_KERNEL)?;
            let single = register_one(&region, access, single_device.clone())?;
            let uid = register_one(&region, access.saturating_add(1), uid_device.clone())?;
            let wuid = register_one(&region, access.saturating_add(2), wuid_device.clone())?;
            let private = register_one(&region, access.saturating_add(3), private_devices.clone())?;
            let reclaim = ReclaimOnPressure::new(budget.clone(), private_devices.clone());
            let view = Arc::new(
                MemoryView {
                    devices: viewed,
                    single: single_device,
                    uid: uid_device,
                    wuid: wuid_device,
                    private: private_devices,
                    settings: settings.clone(),
                },
                GFP_KERNEL,
            )?;
            let pipe_view = Arc::new(
                PipeView {
                    pipes: viewed_pipes,
                },
                GFP_KERNEL,
            )?;
            let (major, first_minor) = (region.major(), region.first_minor());
            // Made in this order: the region, then the devices (added, but refusing opens),
            // then the views that show them, and last, once everything is in place, the
            // devices start serving and the log line goes out; on failure pin-init drops what
            // it made in reverse order, so the region goes last then too.
            Ok(try_pin_init!(Self {
                _region: region,
                _devices <- devices,
                _pipes <- pipes,
                _single <- single,
                _uid <- uid,
                _wuid <- wuid,
                _priv <- private,
                _scullmem: ProcFile::single(c"scullmem", view.clone())?,
                _scullseq: ProcFile::records(c"scullseq", view)?,
                _scullpipe: ProcFile::single(c"scullpipe", pipe_view)?,
                _reclaim: reclaim,
                // Nothing is left that can fail: only now may opens find the devices. Until
                // here they got ENXIO, so a failed init above found no file open, and did not
                // wait for one to close.
                _: {
                    _devices.serve();
                    _pipes.serve();
                    _single.serve();
                    _uid.serve();
                    _wuid.serve();
                    _priv.serve();
                    pr_info!(
                        "major {}, minors {}..{}: {} scull (quantum {}, qset {}, {} bytes in \
                         all), {} scullpipe ({} bytes), scullsingle, sculluid, scullwuid, \
                         scullpriv\n",
                        major,
                        first_minor,
                        first_minor.saturating_add(minors),
                        config.nr_devs,
                        config.layout.quantum(),
                        config.layout.qset(),
                        config.mem_limit,
                        config.pipes,
                        config.pipe_buffer
                    );
                },
            }? Error))
        })
    }
}
