// SPDX-License-Identifier: GPL-2.0

//! A scull device's memory: LDD3's quanta and quantum sets, and the budget they draw from.
//!
//! The quantum sets sit in one growable array. Quanta are allocated on first write and never
//! by a read: a never-written region below the device's size (a hole) reads as zeros.

use crate::{
    sched,
    scull_layout::{
        Layout,
        Location, //
    },
    user_memory::UserVec, //
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    }, //
};

/// Called before each step of a long copy: gives up the CPU if another task should run, and
/// says whether to go on. A task being killed stops, returning what it has done so far, as
/// `generic_perform_write` does; one call may otherwise make millions of steps.
fn keep_going() -> bool {
    if sched::fatal_signal_pending() {
        return false;
    }
    sched::cond_resched();
    true
}

/// Bytes of zeros copied out for holes.
static ZEROS: [u8; 256] = [0; 256];

/// The `len` bytes of `bytes` that start at `at`, or `None` where they are not all there.
fn span(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..)?.get(..len)
}

/// The `len` bytes of `bytes` that start at `at`, or `None` where they are not all there.
fn span_mut(bytes: &mut [u8], at: usize, len: usize) -> Option<&mut [u8]> {
    bytes.get_mut(at..)?.get_mut(..len)
}

/// The memory all scull devices may hold together, and what they hold now: a bound like
/// tmpfs's `size`, so that users who may write to the devices cannot take all of the
/// machine's memory.
///
/// Counted as [`Usage::allocated`] counts: quanta, quantum sets' slot arrays and the arrays
/// of quantum sets, in the bytes asked for. When it runs out, it first asks its
/// [`Reclaim`], if it has one, to free what nobody can reach any more.
#[pin_data]
pub(crate) struct MemoryBudget {
    limit: u64,
    used: Atomic<u64>,
    /// Set for as long as a [`ReclaimOnPressure`] lives.
    #[pin]
    reclaim: Mutex<Option<Arc<dyn Reclaim>>>,
}

/// What can give memory of a [`MemoryBudget`] back: devices that nobody can open again.
pub(crate) trait Reclaim: Send + Sync {
    /// Lets go of what nobody can reach any more, freeing it unless something still holds it;
    /// says whether it let go of anything (then a charge is worth trying again).
    fn reclaim(&self) -> bool;
}

impl MemoryBudget {
    /// A budget of `limit` bytes, none of it used, with nothing to reclaim.
    pub(crate) fn new(limit: u64) -> impl PinInit<Self> {
        pin_init!(Self {
            limit,
            used: Atomic::new(0),
            reclaim <- new_mutex!(None, "MemoryBudget::reclaim"),
        })
    }

    /// The bytes all devices may hold together.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The bytes all devices hold now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }

    /// Takes `bytes` from the budget, if that stays within the limit.
    fn try_charge(&self, bytes: u64) -> Result {
        let mut used = self.used.load(Relaxed);
        loop {
            let new = used
                .checked_add(bytes)
                .filter(|&new| new <= self.limit)
                .ok_or(ENOSPC)?;
            match self.used.cmpxchg(used, new, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// Takes `bytes` from the budget. When that would pass the limit, the [`Reclaim`] frees
    /// what it can first, and the charge is tried once more.
    ///
    /// # Errors
    ///
    /// `ENOSPC` when the budget is used up even so.
    fn charge(&self, bytes: u64) -> Result {
        if self.try_charge(bytes).is_ok() {
            return Ok(());
        }
        // Cloned out of the lock: reclaiming frees devices, which takes time, and no other
        // charge should wait for that lock meanwhile.
        let reclaim = self.reclaim.lock().clone();
        match reclaim {
            Some(reclaim) if reclaim.reclaim() => self.try_charge(bytes),
            _ => Err(ENOSPC),
        }
    }

    /// Gives back `bytes` taken by [`Self::charge`].
    fn uncharge(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Relaxed);
    }
}

/// Makes `reclaim` the [`Reclaim`] of a [`MemoryBudget`] for as long as it lives.
///
/// The reclaimer usually holds devices, which hold the budget: dropping this value is what
/// breaks that cycle, so the module keeps it until it exits.
pub(crate) struct ReclaimOnPressure {
    budget: Arc<MemoryBudget>,
}

impl ReclaimOnPressure {
    pub(crate) fn new(budget: Arc<MemoryBudget>, reclaim: Arc<dyn Reclaim>) -> Self {
        *budget.reclaim.lock() = Some(reclaim);
        Self { budget }
    }
}

impl Drop for ReclaimOnPressure {
    fn drop(&mut self) {
        // Dropped outside the lock: the reclaimer's own drop may free devices.
        let reclaim = self.budget.reclaim.lock().take();
        drop(reclaim);
    }
}

/// One quantum: `quantum` bytes, zero where never written.
///
/// Like every allocation of user data here, it is a [`UserVec`], whose allocator alone sets
/// the flags (accounted, quiet, failing instead of OOM-killing); callers pass `GFP_KERNEL`.
pub(crate) type Quantum = UserVec<u8>;

/// One quantum set: `qset` slots for quanta, allocated on first use.
type QuantumSet = UserVec<Option<Quantum>>;

/// Where the data of a [`Storage::write`] comes from.
///
/// Any `FnMut(&mut [u8]) -> usize` is one: it fills the start of the slice it is given and
/// returns how many bytes it filled.
pub(crate) trait WriteSource {
    /// Fills the start of `out` and returns how many bytes it filled; fewer than `out.len()`
    /// when the source failed (a fault in user memory).
    fn fill(&mut self, out: &mut [u8]) -> usize;

    /// A new quantum of `size` bytes whose `len` bytes at `at` are filled as by
    /// [`WriteSource::fill`] and whose other bytes are zero, with the count filled.
    ///
    /// This default zeroes the whole quantum first; a source that can copy into uninitialised
    /// memory saves that pass over the bytes it fills.
    fn fill_new(&mut self, size: usize, at: usize, len: usize) -> Result<(Quantum, usize)> {
        let mut quantum = Quantum::from_elem(0, size, GFP_KERNEL)?;
        let out = at
            .checked_add(len)
            .and_then(|end| quantum.get_mut(at..end))
            .ok_or(EINVAL)?;
        let filled = self.fill(out);
        Ok((quantum, filled))
    }
}

impl<F: FnMut(&mut [u8]) -> usize> WriteSource for F {
    fn fill(&mut self, out: &mut [u8]) -> usize {
        self(out)
    }
}

/// The memory of one scull device.
///
/// # Invariants
///
/// `charged` bytes of `budget` are this device's: exactly what [`Usage::allocated`] counts.
/// Every allocated quantum set holds at least one quantum, and the array of quantum sets is
/// empty or ends with an allocated one. `allocated_qsets` and `quanta` count the quantum sets
/// and quanta allocated.
pub(crate) struct Storage {
    layout: Layout,
    /// Bytes of data: the highest offset ever written, plus one.
    size: u64,
    qsets: UserVec<Option<QuantumSet>>,
    /// Quantum sets allocated, for the `/proc` views.
    allocated_qsets: usize,
    /// Quanta allocated, for the `/proc` views.
    quanta: usize,
    budget: Arc<MemoryBudget>,
    charged: u64,
}

/// Bytes of one slot of a quantum set, and of one slot of the array of quantum sets.
const QUANTUM_SLOT: u64 = size_of::<Option<Quantum>>() as u64;
const QSET_SLOT: u64 = size_of::<Option<QuantumSet>>() as u64;

/// What a device's memory holds, as the `/proc` views show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Usage {
    /// The device's layout.
    pub(crate) layout: Layout,
    /// Bytes of data.
    pub(crate) size: u64,
    /// Quantum sets allocated.
    pub(crate) qsets: usize,
    /// Quanta allocated.
    pub(crate) quanta: usize,
    /// Bytes of memory asked for: the quanta, whether full or not, and the arrays that index
    /// them (allocator rounding not included).
    pub(crate) allocated: u64,
}

impl Drop for Storage {
    fn drop(&mut self) {
        // Half of RAM is millions of quanta: freed one quantum set at a time, with a chance
        // to reschedule between sets, a trim or unload does not keep the CPU for seconds on a
        // kernel built without preemption. (In 7.3 every x86, arm64 and RISC-V kernel
        // preempts kernel code anyway; 32-bit Arm and UML, which Rust also supports, may not.)
        while let Some(qset) = self.qsets.pop() {
            drop(qset);
            sched::cond_resched();
        }
        self.budget.uncharge(self.charged);
    }
}

impl Storage {
    /// An empty device of the given layout, whose memory counts against `budget`.
    pub(crate) fn new(layout: Layout, budget: Arc<MemoryBudget>) -> Self {
        // INVARIANT: Nothing is allocated and nothing is charged.
        Self {
            layout,
            size: 0,
            qsets: UserVec::new(),
            allocated_qsets: 0,
            quanta: 0,
            budget,
            charged: 0,
        }
    }

    /// Takes `bytes` from the budget for this device; `ENOSPC` when it is used up.
    fn charge(&mut self, bytes: u64) -> Result {
        // Never more than the budget's limit, which is a `u64` too.
        let charged = self.charged.checked_add(bytes).ok_or(ENOSPC)?;
        self.budget.charge(bytes)?;
        self.charged = charged;
        Ok(())
    }

    /// Gives back `bytes` this device took.
    fn uncharge(&mut self, bytes: u64) {
        self.budget.uncharge(bytes);
        self.charged = self.charged.saturating_sub(bytes);
    }

    /// Bytes of the slot array of one quantum set.
    fn qset_slots_bytes(&self) -> u64 {
        (self.layout.qset() as u64).saturating_mul(QUANTUM_SLOT)
    }

    /// The device's layout. Only the KUnit tests need it; the driver reads it from [`Usage`].
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// Bytes of data. Only the KUnit tests need it; the driver reads it from [`Usage`].
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// What the device holds.
    pub(crate) fn usage(&self) -> Usage {
        let qsets = self.allocated_qsets;
        // Each product is memory that was actually allocated, far below `u64::MAX`: the
        // saturating operations only spare the compiler a panic path it cannot prove dead.
        let bytes = |count: usize, size: u64| (count as u64).saturating_mul(size);
        Usage {
            layout: self.layout,
            size: self.size,
            qsets,
            quanta: self.quanta,
            allocated: bytes(self.quanta, self.layout.quantum() as u64)
                .saturating_add(bytes(qsets, self.qset_slots_bytes()))
                .saturating_add(bytes(self.qsets.capacity(), QSET_SLOT)),
        }
    }

    /// Frees all data and adopts `layout` (LDD3's `scull_trim`).
    pub(crate) fn trim(&mut self, layout: Layout) {
        // The old storage is dropped here, which gives its memory back to the budget.
        *self = Self::new(layout, self.budget.clone());
    }

    /// Copies data from offset `pos` to `sink`, at most `len` bytes and never past the size.
    ///
    /// `sink` receives consecutive pieces and returns how much of each it took; taking less
    /// ends the copy (a fault in user memory), and so does a fatal signal. Returns the bytes
    /// taken, and 0 at or past the end of the data.
    ///
    /// # Errors
    ///
    /// Only when nothing was copied: `EFAULT` when the very first piece failed entirely, `EINTR`
    /// when the task was being killed before it.
    pub(crate) fn read(
        &self,
        pos: u64,
        len: usize,
        mut sink: impl FnMut(&[u8]) -> usize,
    ) -> Result<usize> {
        let available = self.size.saturating_sub(pos);
        let len = len.min(usize::try_from(available).unwrap_or(usize::MAX));
        let mut done = 0;
        let mut failure = EFAULT;
        while done < len {
            if !keep_going() {
                failure = EINTR;
                break;
            }
            // Below `size`, hence below `max_size`: `locate` and the addition succeed, and the
            // quantum holds the span (`Location::offset` is below the quantum size).
            let Some(at) = self.locate_checked(pos, done) else {
                break;
            };
            let want = self.piece_len(at, len - done);
            let piece = match self.quantum(at) {
                Some(quantum) => match span(quantum, at.offset, want) {
                    Some(piece) => piece,
                    None => break,
                },
                None => ZEROS.get(..want).unwrap_or(&ZEROS),
            };
            // A sink claiming more than it was given is held to what it was given.
            let taken = sink(piece).min(piece.len());
            // At most `want`, which is at most `len - done`.
            done = done.saturating_add(taken);
            if taken < piece.len() || taken == 0 {
                break;
            }
        }
        if done == 0 && len > 0 {
            return Err(failure);
        }
        Ok(done)
    }

    /// Copies up to `len` bytes from `source` to offset `pos`, allocating memory as needed.
    ///
    /// `source` fills consecutive pieces (or new quanta) and says how much of each it filled;
    /// filling less ends the copy, and so does a fatal signal. Returns the bytes written.
    /// Writes stop at the maximum size, as they do at a file's size limit.
    ///
    /// # Errors
    ///
    /// Only when nothing was written: `EFBIG` for `pos` at or past [`Layout::max_size`],
    /// `ENOSPC` when the memory limit is reached, `ENOMEM` when memory ran out, `EFAULT` when the
    /// source failed, `EINTR` when the task is being killed.
    pub(crate) fn write(
        &mut self,
        pos: u64,
        len: usize,
        mut source: impl WriteSource,
    ) -> Result<usize> {
        if len == 0 {
            return Ok(0);
        }
        let room = self
            .layout
            .max_size()
            .checked_sub(pos)
            .filter(|&room| room > 0)
            .ok_or(EFBIG)?;
        let len = len.min(usize::try_from(room).unwrap_or(usize::MAX));
        // What the array of quantum sets may keep of what this write grows it by: nothing,
        // unless the write leaves data there.
        let qsets_capacity = self.qsets.capacity();
        let mut done = 0;
        let mut failure = EFAULT;
        while done < len {
            if !keep_going() {
                failure = EINTR;
                break;
            }
            let Some(at) = self.locate_checked(pos, done) else {
                break;
            };
            let want = self.piece_len(at, len - done);
            let filled = match self.fill_quantum(at, want, &mut source) {
                Ok(filled) => filled,
                Err(err) => {
                    failure = err;
                    0
                }
            };
            if filled == 0 {
                // Nothing was written here: whatever this step allocated goes, and the size
                // stays as the bytes actually written left it.
                self.release_unused(at.qset, qsets_capacity);
                break;
            }
            // At most `want`, which is at most `len - done`.
            done = done.saturating_add(filled);
            // `pos + done` stays within `max_size`, which fits in `u64`.
            self.size = self.size.max(pos.saturating_add(done as u64));
            if filled < want {
                break;
            }
        }
        if done == 0 && len > 0 {
            return Err(failure);
        }
        Ok(done)
    }

    /// Fills `want` bytes of the quantum at `at` from `source`, allocating the quantum (and its
    /// quantum set) if need be, and returns how many bytes were filled. A new quantum that
    /// received nothing is not kept.
    fn fill_quantum(
        &mut self,
        at: Location,
        want: usize,
        source: &mut impl WriteSource,
    ) -> Result<usize> {
        let quantum_size = self.layout.quantum();
        if let Some(quantum) = self.slot_mut(at)? {
            let piece = span_mut(quantum, at.offset, want).ok_or(EINVAL)?;
            // A source claiming more than it was given is held to what it was given.
            return Ok(source.fill(piece).min(want));
        }
        self.charge(quantum_size as u64)?;
        let result = match source.fill_new(quantum_size, at.offset, want) {
            Ok((quantum, filled)) if filled > 0 => self.slot_mut(at).map(|slot| {
                *slot = Some(quantum);
                filled
            }),
            Ok(_) => Ok(0),
            Err(err) => Err(err),
        };
        match result {
            Ok(filled) if filled > 0 => self.quanta = self.quanta.saturating_add(1),
            _ => self.uncharge(quantum_size as u64),
        }
        result
    }

    /// Frees quantum set `index` if it holds no quantum, drops the empty slots at the end of
    /// the array of quantum sets, and gives back the array capacity past `capacity` that is
    /// no longer needed: what a write allocated before it failed to write anything there.
    ///
    /// Keeps the invariant that the `/proc` views rely on: every allocated quantum set holds
    /// at least one quantum, and the array of quantum sets ends with an allocated one.
    fn release_unused(&mut self, index: usize, capacity: usize) {
        if let Some(qset) = self.qsets.get_mut(index) {
            if qset
                .as_ref()
                .is_some_and(|slots| slots.iter().all(Option::is_none))
            {
                *qset = None;
                self.allocated_qsets = self.allocated_qsets.saturating_sub(1);
                self.uncharge(self.qset_slots_bytes());
            }
        }
        while matches!(self.qsets.last(), Some(None)) {
            self.qsets.pop();
        }
        let keep = self.qsets.len().max(capacity);
        if self.qsets.capacity() > keep {
            // Should the smaller array not be allocated, the larger one stays, still charged.
            let _ = self.set_qsets_capacity(keep);
        }
    }

    /// The bytes a copy of `left` more bytes moves at `at`: up to the end of the quantum.
    fn piece_len(&self, at: Location, left: usize) -> usize {
        left.min(self.layout.quantum().saturating_sub(at.offset))
    }

    /// Locates `pos + done`, if that is a valid offset.
    fn locate_checked(&self, pos: u64, done: usize) -> Option<Location> {
        self.layout.locate(pos.checked_add(done as u64)?)
    }

    /// The quantum at `at`, if it was ever written.
    fn quantum(&self, at: Location) -> Option<&Quantum> {
        self.qsets.get(at.qset)?.as_ref()?.get(at.quantum)?.as_ref()
    }

    /// The slot of the quantum at `at`, with its quantum set allocated (and charged).
    fn slot_mut(&mut self, at: Location) -> Result<&mut Option<Quantum>> {
        if at.qset >= self.qsets.len() {
            // `at.qset` is below `MAX_QSETS`.
            self.grow_qsets(at.qset.checked_add(1).ok_or(EFBIG)?)?;
        }
        let slots_bytes = self.qset_slots_bytes();
        let qset = self.layout.qset();
        // Only a broken `grow_qsets` would leave no slot here.
        let slot = self.qsets.get_mut(at.qset).ok_or(EINVAL)?;
        if slot.is_none() {
            self.budget.charge(slots_bytes)?;
            // Filled within the capacity just allocated, which `push_within_capacity` checks
            // before it adds to the length: no growth, and no length arithmetic to overflow.
            let slots = QuantumSet::with_capacity(qset, GFP_KERNEL).map(|mut slots| {
                while slots.push_within_capacity(None).is_ok() {}
                slots
            });
            match slots {
                Ok(slots) => {
                    *slot = Some(slots);
                    // At most `MAX_QSETS`, the length of the array.
                    self.allocated_qsets = self.allocated_qsets.saturating_add(1);
                    self.charged = self.charged.saturating_add(slots_bytes);
                }
                Err(err) => {
                    self.budget.uncharge(slots_bytes);
                    return Err(err.into());
                }
            }
        }
        self.qsets
            .get_mut(at.qset)
            .and_then(Option::as_mut)
            .and_then(|slots| slots.get_mut(at.quantum))
            .ok_or(EINVAL)
    }

    /// Grows the array of quantum sets to `len` empty slots. Its capacity grows as
    /// `Vec::reserve` would grow it, to at least twice the old one.
    fn grow_qsets(&mut self, len: usize) -> Result {
        let old_capacity = self.qsets.capacity();
        if old_capacity < len {
            self.set_qsets_capacity(old_capacity.saturating_mul(2).max(len))?;
        }
        while self.qsets.len() < len {
            // Cannot fail: the capacity is at least `len`.
            self.qsets.push_within_capacity(None).map_err(|_| EINVAL)?;
        }
        Ok(())
    }

    /// Moves the array of quantum sets into a new one of exactly `capacity` slots (at least
    /// its length), charging what it grows before allocating and giving back what it shrinks.
    /// Allocating the array here, rather than through `Vec::reserve`, makes what is charged
    /// exactly what is held, whatever capacity `reserve` would have picked.
    fn set_qsets_capacity(&mut self, capacity: usize) -> Result {
        // Both far below `u64::MAX` (at most `MAX_QSETS` slots are ever asked for), so the
        // saturating operations never saturate.
        let bytes = |slots: usize| (slots as u64).saturating_mul(QSET_SLOT);
        let old_capacity = self.qsets.capacity();
        if capacity < self.qsets.len() {
            return Err(EINVAL);
        }
        let grown = bytes(capacity).saturating_sub(bytes(old_capacity));
        self.charge(grown)?;
        let mut array = if capacity == 0 {
            UserVec::new()
        } else {
            match UserVec::with_capacity(capacity, GFP_KERNEL) {
                Ok(array) => array,
                Err(err) => {
                    self.uncharge(grown);
                    return Err(err.into());
                }
            }
        };
        for qset in self.qsets.drain_all() {
            // Cannot fail: `array` has room for every slot, checked above.
            if array.push_within_capacity(qset).is_err() {
                break;
            }
        }
        // The old array is freed here.
        self.qsets = array;
        self.uncharge(bytes(old_capacity).saturating_sub(bytes(capacity)));
        Ok(())
    }
}

#[kunit_tests(scull_storage)]
mod tests {
    use super::*;
    use crate::scull_layout::{
        LayoutError,
        MAX_DEVICE_SIZE,
        MAX_QSET,
        MAX_QSETS,
        MAX_QUANTUM, //
    };

    /// An empty device of `quantum`-byte quanta, `qset` to a set, drawing from a budget of
    /// `limit` bytes.
    fn storage_within(quantum: usize, qset: usize, limit: u64) -> Result<Storage> {
        let layout = Layout::new(quantum, qset).map_err(|_| EINVAL)?;
        Ok(Storage::new(
            layout,
            Arc::pin_init(MemoryBudget::new(limit), GFP_KERNEL)?,
        ))
    }

    /// An empty device with no practical memory limit.
    fn storage(quantum: usize, qset: usize) -> Result<Storage> {
        storage_within(quantum, qset, u64::MAX)
    }

    /// Writes `data` at `pos` in one call.
    fn put(storage: &mut Storage, pos: u64, data: &[u8]) -> Result<usize> {
        let mut from = data;
        storage.write(pos, data.len(), |piece: &mut [u8]| {
            let n = piece.len().min(from.len());
            piece[..n].copy_from_slice(&from[..n]);
            from = &from[n..];
            n
        })
    }

    /// Reads up to `len` bytes at `pos` in one call.
    fn get(storage: &Storage, pos: u64, len: usize) -> Result<KVec<u8>> {
        let mut out = KVec::new();
        let mut failed = false;
        storage.read(pos, len, |piece| {
            failed |= out.extend_from_slice(piece, GFP_KERNEL).is_err();
            piece.len()
        })?;
        if failed {
            return Err(ENOMEM);
        }
        Ok(out)
    }

    #[test]
    fn layout_limits() {
        assert_eq!(Layout::new(0, 1), Err(LayoutError::Quantum));
        assert_eq!(Layout::new(MAX_QUANTUM + 1, 1), Err(LayoutError::Quantum));
        assert_eq!(Layout::new(1, 0), Err(LayoutError::Qset));
        assert_eq!(Layout::new(1, MAX_QSET + 1), Err(LayoutError::Qset));
        assert_eq!(
            Layout::new(MAX_QUANTUM, MAX_QSET),
            Err(LayoutError::Product)
        );
        assert!(Layout::new(4000, 1000).is_ok());
    }

    #[test]
    fn layout_edges() -> Result {
        let loc = |qset, quantum, offset| {
            Some(Location {
                qset,
                quantum,
                offset,
            })
        };

        // The smallest layout: one byte per quantum, one quantum per set, so a device is a
        // list of `MAX_QSETS` one-byte sets.
        let tiny = Layout::new(1, 1).map_err(|_| EINVAL)?;
        assert_eq!(tiny.max_size(), MAX_QSETS);
        assert_eq!(tiny.locate(0), loc(0, 0, 0));
        assert_eq!(tiny.locate(1), loc(1, 0, 0));
        assert_eq!(
            tiny.locate(MAX_QSETS - 1),
            loc(MAX_QSETS as usize - 1, 0, 0)
        );
        assert_eq!(tiny.locate(MAX_QSETS), None);

        // Each maximum alone is a valid layout.
        assert!(Layout::new(MAX_QUANTUM, 1).is_ok());
        assert!(Layout::new(1, MAX_QSET).is_ok());

        // The product may reach `MAX_DEVICE_SIZE` but not pass it.
        let qset = (MAX_DEVICE_SIZE / MAX_QUANTUM as u64) as usize;
        let largest = Layout::new(MAX_QUANTUM, qset).map_err(|_| EINVAL)?;
        assert_eq!(largest.max_size(), MAX_DEVICE_SIZE);
        assert_eq!(
            largest.locate(MAX_DEVICE_SIZE - 1),
            loc(0, qset - 1, MAX_QUANTUM - 1)
        );
        assert_eq!(largest.locate(MAX_DEVICE_SIZE), None);
        assert_eq!(largest.locate(u64::MAX), None);
        assert_eq!(
            Layout::new(MAX_QUANTUM, qset + 1),
            Err(LayoutError::Product)
        );
        assert_eq!(largest.with_qset(qset + 1), Err(LayoutError::Product));

        // Values that would overflow a multiplication are refused before it.
        assert_eq!(
            Layout::new(usize::MAX, usize::MAX),
            Err(LayoutError::Quantum)
        );
        assert_eq!(Layout::new(1, usize::MAX), Err(LayoutError::Qset));
        assert_eq!(tiny.with_quantum(usize::MAX), Err(LayoutError::Quantum));

        // Boundaries between quanta and between sets.
        let small = Layout::new(3, 2).map_err(|_| EINVAL)?;
        assert_eq!(small.locate(2), loc(0, 0, 2));
        assert_eq!(small.locate(3), loc(0, 1, 0));
        assert_eq!(small.locate(5), loc(0, 1, 2));
        assert_eq!(small.locate(6), loc(1, 0, 0));
        assert_eq!(small.max_size(), 6 * MAX_QSETS);
        assert_eq!(small.locate(6 * MAX_QSETS), None);
        Ok(())
    }

    #[test]
    fn locate_is_arithmetic() -> Result {
        let layout = Layout::new(4000, 1000).map_err(|_| EINVAL)?;
        let at = |pos| layout.locate(pos);
        let loc = |qset, quantum, offset| {
            Some(Location {
                qset,
                quantum,
                offset,
            })
        };
        assert_eq!(at(0), loc(0, 0, 0));
        assert_eq!(at(3999), loc(0, 0, 3999));
        assert_eq!(at(4000), loc(0, 1, 0));
        assert_eq!(at(3_999_999), loc(0, 999, 3999));
        assert_eq!(at(4_000_000), loc(1, 0, 0));
        assert_eq!(at((1 << 30) + 7), loc(268, 435, 1831));
        assert_eq!(at(MAX_DEVICE_SIZE), None);
        assert_eq!(at(u64::MAX), None);

        let tiny = Layout::new(1, 1).map_err(|_| EINVAL)?;
        assert_eq!(tiny.max_size(), MAX_QSETS);
        assert_eq!(
            tiny.locate(MAX_QSETS - 1),
            loc((MAX_QSETS - 1) as usize, 0, 0)
        );
        assert_eq!(tiny.locate(MAX_QSETS), None);
        Ok(())
    }

    #[test]
    fn write_then_read_across_quanta_and_qsets() -> Result {
        let mut storage = storage(3, 2)?;
        let data: [u8; 20] = core::array::from_fn(|i| i as u8 + 1);
        assert_eq!(put(&mut storage, 0, &data)?, 20);
        assert_eq!(storage.size(), 20);
        assert_eq!(&get(&storage, 0, 100)?[..], &data[..]);
        assert_eq!(&get(&storage, 5, 4)?[..], &data[5..9]);
        assert_eq!(storage.usage().quanta, 7);
        assert_eq!(storage.usage().qsets, 4);
        Ok(())
    }

    #[test]
    fn holes_read_as_zeros_without_allocating() -> Result {
        let mut storage = storage(4, 2)?;
        assert_eq!(put(&mut storage, 30, b"xy")?, 2);
        assert_eq!(storage.size(), 32);
        assert_eq!(storage.usage().quanta, 1);
        let all = get(&storage, 0, 64)?;
        assert_eq!(all.len(), 32);
        assert!(all[..30].iter().all(|&b| b == 0));
        assert_eq!(&all[30..], b"xy");
        assert_eq!(storage.usage().quanta, 1);
        Ok(())
    }

    #[test]
    fn read_at_or_past_end_is_empty() -> Result {
        let mut storage = storage(4, 2)?;
        assert_eq!(get(&storage, 0, 10)?.len(), 0);
        put(&mut storage, 0, b"abc")?;
        assert_eq!(get(&storage, 3, 10)?.len(), 0);
        assert_eq!(get(&storage, u64::MAX, 10)?.len(), 0);
        Ok(())
    }

    #[test]
    fn write_limits() -> Result {
        let mut storage = storage(1, 1)?;
        let layout = storage.layout();
        assert_eq!(put(&mut storage, layout.max_size(), b"a"), Err(EFBIG));
        assert_eq!(put(&mut storage, u64::MAX, b"a"), Err(EFBIG));
        assert_eq!(put(&mut storage, layout.max_size() - 1, b"ab")?, 1);
        assert_eq!(storage.size(), layout.max_size());
        Ok(())
    }

    #[test]
    fn faults_give_short_counts_or_efault() -> Result {
        let mut storage = storage(4, 2)?;
        assert_eq!(storage.write(0, 10, |_: &mut [u8]| 0), Err(EFAULT));
        assert_eq!(storage.size(), 0);
        let mut budget = 6;
        let written = storage.write(0, 10, |piece: &mut [u8]| {
            let n = piece.len().min(budget);
            budget -= n;
            n
        })?;
        assert_eq!(written, 6);
        assert_eq!(storage.size(), 6);
        assert_eq!(storage.read(0, 6, |_| 0), Err(EFAULT));
        Ok(())
    }

    #[test]
    fn a_write_that_writes_nothing_leaves_no_trace() -> Result {
        let mut storage = storage(4, 2)?;
        // Far away, into a new quantum set: fails, and neither grows nor allocates.
        assert_eq!(storage.write(1_000_000, 100, |_: &mut [u8]| 0), Err(EFAULT));
        assert_eq!(storage.size(), 0);
        assert_eq!(storage.usage().quanta, 0);
        assert_eq!(storage.usage().qsets, 0);
        assert!(storage.qsets.is_empty());

        // A write that stops exactly at a quantum boundary keeps no empty quantum after it.
        put(&mut storage, 0, b"ab")?;
        let mut budget = 2;
        let written = storage.write(2, 10, |piece: &mut [u8]| {
            let n = piece.len().min(budget);
            budget -= n;
            n
        })?;
        assert_eq!(written, 2);
        assert_eq!(storage.size(), 4);
        assert_eq!(storage.usage().quanta, 1);
        assert_eq!(storage.usage().qsets, 1);
        assert_eq!(storage.qsets.len(), 1);
        Ok(())
    }

    #[test]
    fn the_budget_bounds_all_devices_and_comes_back() -> Result {
        let budget = Arc::pin_init(MemoryBudget::new(100), GFP_KERNEL)?;
        let layout = Layout::new(10, 2).map_err(|_| EINVAL)?;
        let mut first = Storage::new(layout, budget.clone());
        // One slot of the array of quantum sets (24), a quantum set (2 slots, 48), a quantum.
        assert_eq!(put(&mut first, 0, b"0123456789")?, 10);
        assert_eq!(budget.used(), 82);
        assert_eq!(put(&mut first, 10, b"abcdefghij")?, 10);
        assert_eq!(budget.used(), 92);
        // A second quantum set does not fit: the write moves what fits, then fails.
        assert_eq!(put(&mut first, 15, b"0123456789"), Ok(5));
        assert_eq!(put(&mut first, 20, b"x"), Err(ENOSPC));
        assert_eq!(first.size(), 20);
        assert_eq!(first.usage().allocated, budget.used());
        // Another device draws from the same budget.
        let mut second = Storage::new(layout, budget.clone());
        assert_eq!(put(&mut second, 0, b"y"), Err(ENOSPC));
        assert_eq!(second.usage().allocated, 0);
        // Trimming and dropping give everything back.
        first.trim(layout);
        assert_eq!(budget.used(), 0);
        assert_eq!(put(&mut second, 0, b"y")?, 1);
        assert_eq!(budget.used(), 82);
        drop(second);
        assert_eq!(budget.used(), 0);
        Ok(())
    }

    /// Memory nobody can reach any more, held until the budget asks for it.
    #[pin_data]
    struct Garbage {
        #[pin]
        storage: Mutex<Option<Storage>>,
    }

    impl Reclaim for Garbage {
        fn reclaim(&self) -> bool {
            let garbage = self.storage.lock().take();
            garbage.is_some()
        }
    }

    #[test]
    fn a_full_budget_frees_what_its_reclaimer_holds_before_it_refuses() -> Result {
        let budget = Arc::pin_init(MemoryBudget::new(100), GFP_KERNEL)?;
        let layout = Layout::new(10, 2).map_err(|_| EINVAL)?;
        let mut garbage = Storage::new(layout, budget.clone());
        assert_eq!(put(&mut garbage, 0, b"0123456789")?, 10);
        assert_eq!(budget.used(), 82);
        let garbage = Arc::pin_init(
            pin_init!(Garbage {
                storage <- new_mutex!(Some(garbage), "Garbage::storage"),
            }),
            GFP_KERNEL,
        )?;
        let mut writer = Storage::new(layout, budget.clone());
        // Without a reclaimer the budget refuses; with one, the garbage goes first.
        assert_eq!(put(&mut writer, 0, b"y"), Err(ENOSPC));
        let reclaim = ReclaimOnPressure::new(budget.clone(), garbage.clone());
        assert_eq!(put(&mut writer, 0, b"y")?, 1);
        assert!(garbage.storage.lock().is_none());
        assert_eq!(budget.used(), 82);
        // Nothing is left to reclaim: the budget refuses again.
        assert_eq!(put(&mut writer, 20, b"z"), Err(ENOSPC));
        // Dropping the reclaimer's registration lets the budget, and the garbage, go.
        drop(reclaim);
        assert!(budget.reclaim.lock().is_none());
        Ok(())
    }

    #[test]
    fn charges_are_what_the_views_show() -> Result {
        let mut storage = storage(3, 2)?;
        for pos in [0, 5, 100, 7, 1_000, 40, 3_000] {
            put(&mut storage, pos, b"0123456789")?;
            assert_eq!(storage.usage().allocated, storage.charged);
            assert_eq!(storage.budget.used(), storage.charged);
        }
        // A failed write leaves no charge behind.
        assert_eq!(storage.write(90_000, 10, |_: &mut [u8]| 0), Err(EFAULT));
        assert_eq!(storage.usage().allocated, storage.charged);
        Ok(())
    }

    #[test]
    fn trim_frees_and_adopts_layout() -> Result {
        let mut storage = storage(4, 2)?;
        put(&mut storage, 0, b"0123456789")?;
        let next = Layout::new(8, 8).map_err(|_| EINVAL)?;
        storage.trim(next);
        assert_eq!(storage.size(), 0);
        assert_eq!(storage.usage().quanta, 0);
        assert_eq!(storage.layout(), next);
        Ok(())
    }
}
