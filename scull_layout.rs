// SPDX-License-Identifier: GPL-2.0

//! The shape of a scull device's memory: [`Layout`], checked once, and where an offset lives.
//!
//! LDD3 chains quantum sets in a linked list and walks it on every access. Here the quantum
//! holding any offset is found with two divisions, whatever the offset.

use core::num::NonZero;
use kernel::prelude::*;

/// Largest quantum, in bytes: one quantum is one `kvmalloc` allocation.
pub(crate) const MAX_QUANTUM: usize = 16 << 20;

/// Largest number of quanta in a quantum set.
pub(crate) const MAX_QSET: usize = 1 << 20;

/// Largest number of quantum sets of a device: bounds the array that indexes them.
pub(crate) const MAX_QSETS: u64 = 1 << 20;

/// Largest device size, in bytes, whatever the layout.
pub(crate) const MAX_DEVICE_SIZE: u64 = 1 << 40;

/// Why a [`Layout`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayoutError {
    /// The quantum is zero or larger than [`MAX_QUANTUM`].
    Quantum,
    /// The quantum set is empty or larger than [`MAX_QSET`].
    Qset,
    /// One quantum set would hold more than [`MAX_DEVICE_SIZE`] bytes.
    Product,
}

/// The shape of a device's memory: `qset` quanta of `quantum` bytes per quantum set.
///
/// The sizes are kept as [`NonZero`] from the moment they are checked, so that every
/// division by them is one that cannot divide by zero.
///
/// # Invariants
///
/// `quantum <= MAX_QUANTUM`, `qset <= MAX_QSET`, and `qset_bytes = quantum * qset <=
/// MAX_DEVICE_SIZE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    quantum: NonZero<usize>,
    qset: NonZero<usize>,
    qset_bytes: NonZero<u64>,
}

/// Where a byte offset lives in a device's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    /// Index of the quantum set.
    pub(crate) qset: usize,
    /// Index of the quantum in its set.
    pub(crate) quantum: usize,
    /// Offset in the quantum: below the quantum's size.
    pub(crate) offset: usize,
}

impl Layout {
    /// This layout with another quantum.
    ///
    /// # Errors
    ///
    /// As [`Layout::new`].
    pub(crate) fn with_quantum(self, quantum: usize) -> Result<Self, LayoutError> {
        Self::new(quantum, self.qset.get())
    }

    /// This layout with another quantum-set length.
    ///
    /// # Errors
    ///
    /// As [`Layout::new`].
    pub(crate) fn with_qset(self, qset: usize) -> Result<Self, LayoutError> {
        Self::new(self.quantum.get(), qset)
    }

    /// Checks a quantum size and a quantum-set length.
    ///
    /// # Errors
    ///
    /// [`LayoutError`] names the size out of bounds: the quantum, the quantum set, or their
    /// product.
    pub(crate) fn new(quantum: usize, qset: usize) -> Result<Self, LayoutError> {
        let quantum = NonZero::new(quantum)
            .filter(|quantum| quantum.get() <= MAX_QUANTUM)
            .ok_or(LayoutError::Quantum)?;
        let qset = NonZero::new(qset)
            .filter(|qset| qset.get() <= MAX_QSET)
            .ok_or(LayoutError::Qset)?;
        // Both fit in `u64`: they are at most `MAX_QUANTUM` and `MAX_QSET`.
        let qset_bytes = NonZero::<u64>::new(quantum.get() as u64)
            .zip(NonZero::new(qset.get() as u64))
            .and_then(|(quantum, qset)| quantum.checked_mul(qset))
            .filter(|bytes| bytes.get() <= MAX_DEVICE_SIZE)
            .ok_or(LayoutError::Product)?;
        // INVARIANT: Both sizes were checked against their bounds above, and so was their
        // product, which is `qset_bytes`.
        Ok(Self {
            quantum,
            qset,
            qset_bytes,
        })
    }

    /// Bytes in one quantum.
    pub(crate) fn quantum(&self) -> usize {
        self.quantum.get()
    }

    /// Quanta in one quantum set.
    pub(crate) fn qset(&self) -> usize {
        self.qset.get()
    }

    /// The largest size a device of this layout can reach.
    pub(crate) fn max_size(&self) -> u64 {
        self.qset_bytes
            .get()
            .saturating_mul(MAX_QSETS)
            .min(MAX_DEVICE_SIZE)
    }

    /// Finds `pos` in constant time. `None` when it is past [`Self::max_size`].
    pub(crate) fn locate(&self, pos: u64) -> Option<Location> {
        if pos >= self.max_size() {
            return None;
        }
        // Below `qset_bytes`, hence below `MAX_DEVICE_SIZE`: it fits in `usize`, as do the
        // index of the quantum set (below `MAX_QSETS`) and the others (below `qset` and
        // `quantum`).
        let rest = usize::try_from(pos % self.qset_bytes).ok()?;
        Some(Location {
            qset: usize::try_from(pos / self.qset_bytes).ok()?,
            quantum: rest / self.quantum,
            offset: rest % self.quantum,
        })
    }
}
