// SPDX-License-Identifier: GPL-2.0

//! The `/proc/scullmem` and `/proc/scullseq` views of the scull devices and their memory.

use crate::proc_fs::{
    ShowAll,
    ShowRecords, //
};
use crate::{
    scull_access::{
        Guarded,
        OneUser,
        PerTerminal,
        Refuse,
        Single,
        Wait, //
    },
    scull_mutex::{
        ScullDev,
        Settings, //
    },
    scull_pipe::PipeDev,
    scull_storage::{
        MemoryBudget,
        Usage, //
    }, //
};
use kernel::{
    fmt,
    prelude::*,
    seq_file::{
        seq_print,
        SeqFile, //
    },
    sync::Arc, //
};

/// What `/proc/scullmem` and `/proc/scullseq` show: LDD3's view of each device (its layout,
/// size, quantum sets and quanta), with the memory it costs and a line of totals.
///
/// Every device that can hold memory has a line: `scull0` to `scullN`, the access devices,
/// and each device `scullpriv` keeps, its session alive or ended. So `used=`, the budget all
/// of them draw from, is the sum of the lines' `allocated=` whenever no writer is running,
/// but for one case: a scullpriv device forgotten (its session ended) while a file that
/// outlived its session still holds it keeps its memory until that file closes, unlisted.
///
/// Each line is read from a copy of the device's usage, behind a lock held for nothing else
/// (no user copy happens under it): a line is always consistent, and never waits for a
/// writer stalled in a page fault.
pub(crate) struct MemoryView {
    pub(crate) devices: KVec<Arc<ScullDev>>,
    pub(crate) single: Arc<Guarded<Single>>,
    pub(crate) uid: Arc<Guarded<OneUser<Refuse>>>,
    pub(crate) wuid: Arc<Guarded<OneUser<Wait>>>,
    pub(crate) private: Arc<PerTerminal>,
    /// For the memory budget, which every scull device draws from.
    pub(crate) settings: Arc<Settings>,
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
        self.devices = self.devices.saturating_add(1);
        self.size = self.size.saturating_add(usage.size);
        self.allocated = self.allocated.saturating_add(usage.allocated);
        self.qsets = self.qsets.saturating_add(usage.qsets);
        self.quanta = self.quanta.saturating_add(usage.quanta);
    }

    /// Shows the totals, and the `budget` all devices draw from: its limit and what they use
    /// of it.
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

/// What a line of the views is about, and how it starts.
enum Line {
    /// `scull{0}`.
    Scull(usize),
    /// scullsingle, sculluid or scullwuid.
    Guarded(&'static str),
    /// A device that scullpriv keeps: its slot, its terminal's device number, and whether a
    /// task is still in its session.
    Private {
        slot: usize,
        terminal: u32,
        alive: bool,
    },
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scull(index) => write!(f, "scull{index}: "),
            Self::Guarded(name) => write!(f, "{name}: "),
            Self::Private {
                slot,
                terminal,
                alive,
            } => write!(
                f,
                "scullpriv.{slot}: terminal={terminal} alive={} ",
                u8::from(*alive)
            ),
        }
    }
}

/// Shows `line` with what `usage` says, and adds it to `totals`.
fn show_usage(m: &SeqFile, line: Line, usage: Usage, totals: &mut Totals) {
    seq_print!(
        m,
        "{line}quantum={} qset={} size={} allocated={} qsets={} quanta={}\n",
        usage.layout.quantum(),
        usage.layout.qset(),
        usage.size,
        usage.allocated,
        usage.qsets,
        usage.quanta
    );
    totals.add(&usage);
}

impl MemoryView {
    /// Shows `scull{index}`, if there is one.
    fn show_device(&self, index: usize, m: &SeqFile, totals: &mut Totals) {
        if let Some(device) = self.devices.get(index) {
            show_usage(m, Line::Scull(index), device.usage(), totals);
        }
    }

    /// Calls `each` with the line and usage of every access device: scullsingle, sculluid and
    /// scullwuid, then every device scullpriv keeps.
    fn each_access_device(&self, mut each: impl FnMut(Line, Usage)) {
        for (name, device) in [
            ("scullsingle", &self.single.device),
            ("sculluid", &self.uid.device),
            ("scullwuid", &self.wuid.device),
        ] {
            each(Line::Guarded(name), device.usage());
        }
        self.private.each_device(|slot, terminal, alive, usage| {
            each(
                Line::Private {
                    slot,
                    terminal,
                    alive,
                },
                usage,
            );
        });
    }

    /// Shows the access devices.
    fn show_access_devices(&self, m: &SeqFile, totals: &mut Totals) {
        self.each_access_device(|line, usage| show_usage(m, line, usage, totals));
    }
}

/// `/proc/scullmem`: all in one go, so the totals are exactly the sum of the lines above them.
impl ShowAll for MemoryView {
    fn show(&self, m: &SeqFile) {
        let mut totals = Totals::default();
        for index in 0..self.devices.len() {
            self.show_device(index, m, &mut totals);
        }
        self.show_access_devices(m, &mut totals);
        totals.show(m, self.settings.budget());
    }
}

/// `/proc/scullseq`: one record per scullN device, one for the access devices, then one for
/// the totals. `seq_file` may return to user space between records, so the totals are a
/// snapshot of their own, taken when their record is shown: with writers running they can
/// differ from the sum of the lines above.
impl ShowRecords for MemoryView {
    fn records(&self) -> usize {
        self.devices.len().saturating_add(2)
    }

    fn show_record(&self, index: usize, m: &SeqFile) {
        let mut totals = Totals::default();
        match index.checked_sub(self.devices.len()) {
            None => self.show_device(index, m, &mut totals),
            Some(0) => self.show_access_devices(m, &mut totals),
            Some(1) => {
                for device in &self.devices {
                    totals.add(&device.usage());
                }
                self.each_access_device(|_, usage| totals.add(&usage));
                totals.show(m, self.settings.budget());
            }
            Some(_) => {}
        }
    }
}

/// `/proc/scullpipe`: each scullpipe's open files and the buffer it holds (LDD3's
/// `scull_read_p_mem` shows those, with its read and write pointers).
pub(crate) struct PipeView {
    pub(crate) pipes: KVec<Arc<PipeDev>>,
}

impl ShowAll for PipeView {
    fn show(&self, m: &SeqFile) {
        for (index, pipe) in self.pipes.iter().enumerate() {
            let state = pipe.files();
            seq_print!(
                m,
                "scullpipe{index}: files={} buffer={}\n",
                state.files,
                state.buffer
            );
        }
    }
}
