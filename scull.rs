// SPDX-License-Identifier: GPL-2.0

//! scull, the "Simple Character Utility for Loading Localities" of Linux Device Drivers (LDD3),
//! chapter 3, in Rust.
//!
//! `scull_nr_devs` devices (`/dev/scull0` to `/dev/scull3` by default) share one major, shown as
//! `scull` in `/proc/devices`. Each device is a stretch of kernel memory that grows as it is
//! written and is freed when the device is opened write-only.
//!
//! This file is the module only: its parameters and its registrations. The rest is by topic:
//! `scull_fops.rs` (file operations), `scull_ioctl.rs` (ioctls), `scull_proc.rs` (`/proc`
//! views), `scull_mutex.rs` (a device's memory and locking), `scull_pipe.rs` (scullpipe),
//! `scull_access.rs` (access control), and `chrdev.rs` and `file_ops.rs` (the char-device
//! plumbing).

mod capability;
mod chrdev;
mod fasync;
mod file_ops;
mod interruptible_mutex;
mod iov_buffer;
mod kiocb;
mod meminfo;
mod procfs;
mod sched;
mod scull_access;
mod scull_fops;
mod scull_ioctl;
mod scull_mutex;
mod scull_pipe;
mod scull_proc;
mod tty;
mod user_memory;

use chrdev::{
    Region,
    Registration,
    MAX_MAJOR,
    MAX_MINOR, //
};
use file_ops::Operations;
use kernel::{
    prelude::*,
    sync::Arc, //
};
use procfs::ProcFile;
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
    Layout,
    LayoutError,
    MemoryBudget,
    ScullDev,
    Settings,
    MAX_QSET,
    MAX_QUANTUM, //
};
use scull_pipe::{
    PipeDev,
    ScullPipe,
    MAX_PIPE_BUFFER, //
};
use scull_proc::{
    MemoryView,
    PipeView, //
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

/// Most devices one module instance offers: enough to experiment, small enough to stay sane.
const MAX_DEVICES: u32 = 1024;

/// Most scullpipe devices.
const MAX_PIPES: u32 = 64;

/// `scullsingle`, `sculluid`, `scullwuid` and `scullpriv`, after the pipes, as in LDD3.
const ACCESS_DEVICES: u32 = 4;

/// The module parameters, checked.
struct Config {
    major: u32,
    first_minor: u32,
    /// All the minors: scull's, the pipes' and the access devices', in that order.
    minors: u32,
    nr_devs: u32,
    layout: Layout,
    pipes: u32,
    pipe_buffer: usize,
    mem_limit: u64,
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
        let pipes = checked_param(
            "scull_p_nr_devs",
            module_parameters::scull_p_nr_devs.value(),
            1,
            MAX_PIPES,
        )?;
        let pipe_buffer = checked_param(
            "scull_p_buffer",
            module_parameters::scull_p_buffer.value(),
            1,
            MAX_PIPE_BUFFER as u32,
        )?;
        // All the minors, scull's, the pipes' and the access devices', must exist. The
        // parameters are far below `u32::MAX`, but checked arithmetic is what lets the
        // compiler see that no sum overflows.
        let minors = nr_devs
            .checked_add(pipes)
            .and_then(|minors| minors.checked_add(ACCESS_DEVICES))
            .ok_or(EINVAL)?;
        let last_minor = first_minor.saturating_add(minors.saturating_sub(1));
        if last_minor > MAX_MINOR {
            pr_err!(
                "scull_minor={first_minor}: minors up to {last_minor} are needed, past the \
                 largest, {MAX_MINOR}\n"
            );
            return Err(EINVAL);
        }
        // A quarter of RAM unless told otherwise: half of tmpfs's default `size`, since
        // scull's memory cannot be swapped out, and each byte it counts costs more than a
        // byte (slab rounding; more than twice as much under KASAN and kmemleak).
        let mem_limit = match module_parameters::scull_mem_limit.value() {
            0 => meminfo::total_ram() / 4,
            limit => limit,
        };
        Ok(Self {
            major,
            first_minor,
            minors,
            nr_devs,
            layout,
            pipes,
            pipe_buffer: pipe_buffer as usize,
            mem_limit,
        })
    }
}

#[pin_data]
struct ScullModule {
    // Fields drop in declaration order: the views go first, the device numbers last. (If
    // init fails part way, pin-init drops what it made in reverse order of making it, which
    // also leaves the region for last.)
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
            let budget = Arc::new(MemoryBudget::new(config.mem_limit), GFP_KERNEL)?;
            let settings = Arc::pin_init(
                Settings::new(config.layout, config.pipe_buffer, budget),
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
            let single = register_one(
                &region,
                access,
                Arc::pin_init(Guarded::new(settings.clone(), Single::new()), GFP_KERNEL)?,
            )?;
            let uid = register_one(
                &region,
                access.saturating_add(1),
                Arc::pin_init(Guarded::new(settings.clone(), OneUser::new()), GFP_KERNEL)?,
            )?;
            let wuid = register_one(
                &region,
                access.saturating_add(2),
                Arc::pin_init(Guarded::new(settings.clone(), OneUser::new()), GFP_KERNEL)?,
            )?;
            let private = register_one(
                &region,
                access.saturating_add(3),
                Arc::pin_init(PerTerminal::new(settings.clone()), GFP_KERNEL)?,
            )?;
            let view = Arc::new(
                MemoryView {
                    devices: viewed,
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
            // Made in this order: the region, then the devices, then the views that show them,
            // and last the log line, once everything is in place; on failure pin-init drops
            // what it made in reverse order, so the region goes last then too.
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
                _: {
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
