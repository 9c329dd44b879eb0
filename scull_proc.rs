// SPDX-License-Identifier: GPL-2.0

//! The `/proc/scullmem` and `/proc/scullseq` views of the scull devices and their memory.

use crate::proc_fs::{
    ShowAll,
    ShowRecords, //
};
use crate::scull_pipe::PipeDev;
use crate::{
    scull_mutex::{
        ScullDev,
        Settings, //
    },
    scull_storage::{
        MemoryBudget,
        Usage, //
    }, //
};
use core::cmp::Ordering;
use kernel::{
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
/// Each device's numbers are read under its lock, which is held for nothing else (no user
/// copy happens under it): a device line is always consistent, and writers wait for at most
/// the count of its quantum sets.
pub(crate) struct MemoryView {
    pub(crate) devices: KVec<Arc<ScullDev>>,
    /// For the memory budget, which every scull device draws from (scullpriv's and the
    /// access devices' too, though the views do not list them).
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
        let usage = self.devices.get(index)?.usage();
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
        self.devices.len().saturating_add(1)
    }

    fn show_record(&self, index: usize, m: &SeqFile) {
        match index.cmp(&self.devices.len()) {
            Ordering::Less => {
                self.show_device(index, m);
            }
            Ordering::Equal => {
                let mut totals = Totals::default();
                for device in &self.devices {
                    totals.add(&device.usage());
                }
                totals.show(m, self.settings.budget());
            }
            Ordering::Greater => {}
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
