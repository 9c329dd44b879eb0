// SPDX-License-Identifier: GPL-2.0

//! scull, the "Simple Character Utility for Loading Localities" of Linux Device Drivers (LDD3),
//! chapter 3, in Rust.
//!
//! `scull_nr_devs` devices (`/dev/scull0` to `/dev/scull3` by default) share one major, shown as
//! `scull` in `/proc/devices`. Each device is a stretch of kernel memory that grows as it is
//! written and is freed when the device is opened write-only. See `scull_mutex.rs` for how the
//! memory is laid out and locked, and `chrdev.rs` for the char-device plumbing.

mod capability;
mod chrdev;
mod fasync;
mod iov_buffer;
mod kiocb;
mod meminfo;
mod procfs;
mod sched;
mod scull_access;
mod scull_mutex;
mod scull_pipe;
mod tty;
mod user_memory;

use capability::capable_sys_admin;
use chrdev::{
    Operations,
    Region,
    Registration,
    Whence,
    MAX_MAJOR,
    MAX_MINOR, //
};
use core::marker::PhantomData;
use iov_buffer::new_buffer_from_iter;
use kernel::{
    ffi::c_int,
    fs::{
        file::flags,
        File,
        Kiocb, //
    },
    ioctl::{
        _IO,
        _IOR,
        _IOW,
        _IOWR, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    prelude::*,
    seq_file::{
        seq_print,
        SeqFile, //
    },
    sync::{
        Arc,
        ArcBorrow, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};
use procfs::{
    ProcFile,
    ShowAll,
    ShowRecords, //
};
use scull_access::{
    Guarded,
    OneUser,
    PerTerminal,
    Policy,
    Single, //
};
use scull_mutex::{
    gfp as quantum_gfp,
    Layout,
    LayoutError,
    MemoryBudget,
    Quantum,
    ScullDev,
    Settings,
    Usage,
    WriteSource,
    MAX_QSET,
    MAX_QUANTUM, //
};
use scull_pipe::{
    PipeDev,
    ScullPipe,
    MAX_PIPE_BUFFER, //
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
                          (0: half of RAM, as tmpfs's default size)",
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
        // All the minors, scull's, the pipes' and the access devices', must exist.
        if first_minor + nr_devs + pipes + ACCESS_DEVICES - 1 > MAX_MINOR {
            pr_err!(
                "scull_minor={first_minor}: minors up to {} are needed, past the largest, \
                 {MAX_MINOR}\n",
                first_minor + nr_devs + pipes + ACCESS_DEVICES - 1
            );
            return Err(EINVAL);
        }
        // As tmpfs's `size`: half of RAM unless told otherwise.
        let mem_limit = match module_parameters::scull_mem_limit.value() {
            0 => meminfo::total_ram() / 2,
            limit => limit,
        };
        Ok(Self {
            major,
            first_minor,
            nr_devs,
            layout,
            pipes,
            pipe_buffer: pipe_buffer as usize,
            mem_limit,
        })
    }
}

struct ScullModule {
    // Fields drop in declaration order: the views go first, the device numbers last.
    _scullmem: ProcFile<MemoryView>,
    _scullseq: ProcFile<MemoryView>,
    _devices: Pin<KBox<Registration<Scull<ScullDev>>>>,
    _pipes: Pin<KBox<Registration<ScullPipe>>>,
    _single: Pin<KBox<Registration<Access<Single>>>>,
    _uid: Pin<KBox<Registration<Access<OneUser<false>>>>>,
    _wuid: Pin<KBox<Registration<Access<OneUser<true>>>>>,
    _priv: Pin<KBox<Registration<Scull<PerTerminal>>>>,
    _region: Region,
}

/// Serves minor `index` of `region` with `T`'s operations on `device`.
fn register_one<T: Operations>(
    region: &Region,
    index: u32,
    device: Arc<T::Device>,
) -> Result<Pin<KBox<Registration<T>>>> {
    let mut devices = KVec::with_capacity(1, GFP_KERNEL)?;
    devices.push(device, GFP_KERNEL)?;
    KBox::pin_init(Registration::new(region, index, devices), GFP_KERNEL)
}

impl kernel::Module for ScullModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let config = Config::from_params()?;
        let minors = config.nr_devs + config.pipes + ACCESS_DEVICES;
        let region = Region::new(c"scull", config.major, config.first_minor, minors)?;
        let budget = Arc::new(MemoryBudget::new(config.mem_limit), GFP_KERNEL)?;
        let settings = Arc::pin_init(Settings::new(config.layout, budget), GFP_KERNEL)?;
        let mut devices = KVec::with_capacity(config.nr_devs as usize, GFP_KERNEL)?;
        let mut viewed = KVec::with_capacity(config.nr_devs as usize, GFP_KERNEL)?;
        for _ in 0..config.nr_devs {
            let device = Arc::pin_init(ScullDev::new(settings.clone()), GFP_KERNEL)?;
            viewed.push(device.clone(), GFP_KERNEL)?;
            devices.push(device, GFP_KERNEL)?;
        }
        let devices = KBox::pin_init(Registration::new(&region, 0, devices), GFP_KERNEL)?;
        let mut pipes = KVec::with_capacity(config.pipes as usize, GFP_KERNEL)?;
        for _ in 0..config.pipes {
            pipes.push(
                Arc::pin_init(PipeDev::new(config.pipe_buffer)?, GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        let pipes = KBox::pin_init(
            Registration::new(&region, config.nr_devs, pipes),
            GFP_KERNEL,
        )?;
        let access = config.nr_devs + config.pipes;
        let single = register_one(
            &region,
            access,
            Arc::pin_init(Guarded::new(settings.clone(), Single::new()), GFP_KERNEL)?,
        )?;
        let uid = register_one(
            &region,
            access + 1,
            Arc::pin_init(Guarded::new(settings.clone(), OneUser::new()), GFP_KERNEL)?,
        )?;
        let wuid = register_one(
            &region,
            access + 2,
            Arc::pin_init(Guarded::new(settings.clone(), OneUser::new()), GFP_KERNEL)?,
        )?;
        let private = register_one(
            &region,
            access + 3,
            Arc::pin_init(PerTerminal::new(settings.clone()), GFP_KERNEL)?,
        )?;
        let view = Arc::new(
            MemoryView {
                devices: viewed,
                settings: settings.clone(),
            },
            GFP_KERNEL,
        )?;
        let scullmem = ProcFile::single(c"scullmem", view.clone())?;
        let scullseq = ProcFile::records(c"scullseq", view)?;
        pr_info!(
            "major {}, minors {}..{}: {} scull (quantum {}, qset {}, {} bytes in all), {} \
             scullpipe ({} bytes), scullsingle, sculluid, scullwuid, scullpriv\n",
            region.major(),
            region.first_minor(),
            region.first_minor() + minors,
            config.nr_devs,
            config.layout.quantum(),
            config.layout.qset(),
            config.mem_limit,
            config.pipes,
            config.pipe_buffer
        );
        Ok(Self {
            _scullmem: scullmem,
            _scullseq: scullseq,
            _devices: devices,
            _pipes: pipes,
            _single: single,
            _uid: uid,
            _wuid: wuid,
            _priv: private,
            _region: region,
        })
    }
}

/// What `/proc/scullmem` and `/proc/scullseq` show: LDD3's view of each device (its layout,
/// size, quantum sets and quanta), with the memory it costs and a line of totals.
///
/// Each device's numbers are read under its lock, which is held for nothing else (no user
/// copy happens under it): a device line is always consistent, and writers wait for at most
/// the count of its quantum sets.
struct MemoryView {
    devices: KVec<Arc<ScullDev>>,
    /// For the memory budget, which every scull device draws from (scullpriv's and the
    /// access devices' too, though the views do not list them).
    settings: Arc<Settings>,
}

/// Sums over the devices.
#[derive(Default)]
struct Totals {
    devices: usize,
    size: u64,
    allocated: u64,
    qsets: usize,
    quanta: usize,
}

impl Totals {
    fn add(&mut self, usage: &Usage) {
        self.devices += 1;
        self.size = self.size.saturating_add(usage.size);
        self.allocated = self.allocated.saturating_add(usage.allocated);
        self.qsets = self.qsets.saturating_add(usage.qsets);
        self.quanta = self.quanta.saturating_add(usage.quanta);
    }

    /// Shows the totals, and the `budget` all devices draw from: its limit and what every
    /// device, listed or not, uses of it.
    fn show(&self, m: &SeqFile, budget: &MemoryBudget) {
        seq_print!(
            m,
            "total: devices={} size={} allocated={} qsets={} quanta={} limit={} used={}\n",
            self.devices,
            self.size,
            self.allocated,
            self.qsets,
            self.quanta,
            budget.limit(),
            budget.used()
        );
    }
}

impl MemoryView {
    /// Shows device `index`, if there is one, and returns what it showed.
    fn show_device(&self, index: usize, m: &SeqFile) -> Option<Usage> {
        let usage = self.devices.get(index)?.lock().usage();
        seq_print!(
            m,
            "scull{index}: quantum={} qset={} size={} allocated={} qsets={} quanta={}\n",
            usage.layout.quantum(),
            usage.layout.qset(),
            usage.size,
            usage.allocated,
            usage.qsets,
            usage.quanta
        );
        Some(usage)
    }
}

/// `/proc/scullmem`: all in one go, so the totals are exactly the sum of the lines above them.
impl ShowAll for MemoryView {
    fn show(&self, m: &SeqFile) {
        let mut totals = Totals::default();
        for index in 0..self.devices.len() {
            if let Some(usage) = self.show_device(index, m) {
                totals.add(&usage);
            }
        }
        totals.show(m, self.settings.budget());
    }
}

/// `/proc/scullseq`: one record per device, then one for the totals. `seq_file` may return to
/// user space between records, so the totals are a snapshot of their own, taken when their
/// record is shown: with writers running they can differ from the sum of the lines above.
impl ShowRecords for MemoryView {
    fn records(&self) -> usize {
        self.devices.len() + 1
    }

    fn show_record(&self, index: usize, m: &SeqFile) {
        if index < self.devices.len() {
            self.show_device(index, m);
        } else if index == self.devices.len() {
            let mut totals = Totals::default();
            for device in &self.devices {
                totals.add(&device.lock().usage());
            }
            totals.show(m, self.settings.budget());
        }
    }
}

/// The data of a `write`, as a [`WriteSource`].
struct UserData<'a, 'data>(&'a mut IovIterSource<'data>);

impl WriteSource for UserData<'_, '_> {
    fn fill(&mut self, out: &mut [u8]) -> usize {
        self.0.copy_from_iter(out)
    }

    // New quanta are copied into straight away, not zeroed and then overwritten: this is what
    // makes writing into fresh memory as cheap as in LDD3's C code.
    fn fill_new(&mut self, size: usize, at: usize, len: usize) -> Result<(Quantum, usize)> {
        new_buffer_from_iter(self.0, size, at, len, quantum_gfp())
    }
}

/// The file operations of the nodes whose files use a scull device: `/dev/scullN`, whose
/// device is `D` itself, and `scullpriv`, whose device depends on the opener.
struct Scull<D>(PhantomData<D>);

/// How a node finds the scull device an opening file is to use.
trait Opener: Send + Sync + Sized + 'static {
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

// LDD3's ioctl numbers (`scull.h`): magic 'k', numbers 0 to 12. S: set through a pointer,
// T: set from the argument, G: get through a pointer, Q: return as the result, X: exchange
// through a pointer, H: set from the argument and return the old value ("shift").
const SCULL_IOC_MAGIC: u32 = b'k' as u32;
const SCULL_IOCRESET: u32 = _IO(SCULL_IOC_MAGIC, 0);
const SCULL_IOCSQUANTUM: u32 = _IOW::<c_int>(SCULL_IOC_MAGIC, 1);
const SCULL_IOCSQSET: u32 = _IOW::<c_int>(SCULL_IOC_MAGIC, 2);
const SCULL_IOCTQUANTUM: u32 = _IO(SCULL_IOC_MAGIC, 3);
const SCULL_IOCTQSET: u32 = _IO(SCULL_IOC_MAGIC, 4);
const SCULL_IOCGQUANTUM: u32 = _IOR::<c_int>(SCULL_IOC_MAGIC, 5);
const SCULL_IOCGQSET: u32 = _IOR::<c_int>(SCULL_IOC_MAGIC, 6);
const SCULL_IOCQQUANTUM: u32 = _IO(SCULL_IOC_MAGIC, 7);
const SCULL_IOCQQSET: u32 = _IO(SCULL_IOC_MAGIC, 8);
const SCULL_IOCXQUANTUM: u32 = _IOWR::<c_int>(SCULL_IOC_MAGIC, 9);
const SCULL_IOCXQSET: u32 = _IOWR::<c_int>(SCULL_IOC_MAGIC, 10);
const SCULL_IOCHQUANTUM: u32 = _IO(SCULL_IOC_MAGIC, 11);
const SCULL_IOCHQSET: u32 = _IO(SCULL_IOC_MAGIC, 12);

/// Which setting an ioctl is about.
#[derive(Clone, Copy)]
enum Setting {
    Quantum,
    Qset,
}

impl Setting {
    fn get(self, layout: Layout) -> usize {
        match self {
            Self::Quantum => layout.quantum(),
            Self::Qset => layout.qset(),
        }
    }

    /// `layout` with this setting changed to `value` (a C `int`); `EINVAL` when that is no
    /// valid layout, as for a load parameter.
    fn set(self, layout: Layout, value: c_int) -> Result<Layout> {
        let value = usize::try_from(value).map_err(|_| EINVAL)?;
        match self {
            Self::Quantum => layout.with_quantum(value),
            Self::Qset => layout.with_qset(value),
        }
        .map_err(|_| EINVAL)
    }
}

/// A setting as a C `int`; layouts keep both well below `c_int::MAX`.
fn as_c_int(value: usize) -> c_int {
    c_int::try_from(value).unwrap_or(c_int::MAX)
}

/// The `int` behind a user pointer `arg`.
fn user_int(arg: usize) -> UserSlice {
    UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<c_int>())
}

/// What an ioctl does with its setting, by the letter LDD3 gives it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// S: set through a pointer.
    Set,
    /// T: set from the argument ("tell").
    Tell,
    /// G: get through a pointer.
    Get,
    /// Q: return as the result ("query").
    Query,
    /// X: exchange through a pointer.
    Exchange,
    /// H: set from the argument and return the old value ("shift").
    Shift,
}

/// Decodes a command other than `SCULL_IOCRESET`.
fn decode(cmd: u32) -> Option<(Op, Setting)> {
    let (op, setting) = match cmd {
        SCULL_IOCSQUANTUM => (Op::Set, Setting::Quantum),
        SCULL_IOCSQSET => (Op::Set, Setting::Qset),
        SCULL_IOCTQUANTUM => (Op::Tell, Setting::Quantum),
        SCULL_IOCTQSET => (Op::Tell, Setting::Qset),
        SCULL_IOCGQUANTUM => (Op::Get, Setting::Quantum),
        SCULL_IOCGQSET => (Op::Get, Setting::Qset),
        SCULL_IOCQQUANTUM => (Op::Query, Setting::Quantum),
        SCULL_IOCQQSET => (Op::Query, Setting::Qset),
        SCULL_IOCXQUANTUM => (Op::Exchange, Setting::Quantum),
        SCULL_IOCXQSET => (Op::Exchange, Setting::Qset),
        SCULL_IOCHQUANTUM => (Op::Shift, Setting::Quantum),
        SCULL_IOCHQSET => (Op::Shift, Setting::Qset),
        _ => return None,
    };
    Some((op, setting))
}

/// Handles LDD3's ioctls on any scull device.
fn scull_ioctl(settings: &Settings, cmd: u32, arg: usize) -> Result<isize> {
    if cmd == SCULL_IOCRESET {
        require_admin()?;
        settings.reset();
        return Ok(0);
    }
    // Wrong magic, number, direction or size alike.
    let (op, setting) = decode(cmd).ok_or(ENOTTY)?;
    if !matches!(op, Op::Get | Op::Query) {
        require_admin()?;
    }
    match op {
        Op::Get => {
            let value = as_c_int(setting.get(settings.current()));
            user_int(arg).writer().write(&value)?;
            Ok(0)
        }
        Op::Query => Ok(setting.get(settings.current()) as isize),
        Op::Set => {
            let value: c_int = user_int(arg).reader().read()?;
            settings.update(|layout| setting.set(layout, value))?;
            Ok(0)
        }
        Op::Tell | Op::Shift => {
            let value = c_int::try_from(arg).map_err(|_| EINVAL)?;
            let old = settings.update(|layout| setting.set(layout, value))?;
            Ok(if op == Op::Shift {
                setting.get(old) as isize
            } else {
                0
            })
        }
        Op::Exchange => {
            // The old value goes back through the pointer the new one came from, written
            // before the change is made (under the settings lock), so a fault changes nothing.
            let (mut reader, mut writer) = user_int(arg).reader_writer();
            let value: c_int = reader.read()?;
            settings.update(|layout| {
                let new = setting.set(layout, value)?;
                writer.write(&as_c_int(setting.get(layout)))?;
                Ok::<_, Error>(new)
            })?;
            Ok(0)
        }
    }
}

/// Changing scull's settings takes `CAP_SYS_ADMIN`, as in LDD3.
fn require_admin() -> Result {
    if capable_sys_admin() {
        Ok(())
    } else {
        Err(EPERM)
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
struct Access<P>(PhantomData<P>);

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
