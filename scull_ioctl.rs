// SPDX-License-Identifier: GPL-2.0

//! The ioctls of every scull device: LDD3's `SCULL_IOC*` commands on the shared settings.
//!
//! The numbers are those of `scull_ioctl.h`, the header user space includes; keep both alike.

use crate::capability::capable_sys_admin;
use crate::sched::fatal_signal_pending;
use crate::scull_pipe::MAX_PIPE_BUFFER;
use crate::{
    scull_layout::Layout,
    scull_mutex::Settings, //
};
use kernel::{
    ffi::c_int,
    ioctl::{
        _IO,
        _IOR,
        _IOW,
        _IOWR, //
    },
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

// LDD3's ioctl numbers (`scull.h`): magic 'k', numbers 0 to 14. S: set through a pointer,
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
// scullpipe's buffer size (LDD3's `scull_p_buffer`), answered by every scull device.
const SCULL_P_IOCTSIZE: u32 = _IO(SCULL_IOC_MAGIC, 13);
const SCULL_P_IOCQSIZE: u32 = _IO(SCULL_IOC_MAGIC, 14);

/// Which setting an ioctl is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// LDD3's ioctls, which every scull device answers.
impl Settings {
    /// Handles ioctl `cmd` with argument `arg`.
    ///
    /// # Errors
    ///
    /// `ENOTTY` for a command scull does not know, `EPERM` for a change without
    /// `CAP_SYS_ADMIN`, `EINVAL` for a value out of bounds, `EFAULT` for a bad pointer.
    pub(crate) fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            SCULL_IOCRESET => {
                require_admin()?;
                self.reset();
                return Ok(0);
            }
            SCULL_P_IOCTSIZE => {
                require_admin()?;
                let size = c_int::try_from(arg)
                    .ok()
                    .and_then(|size| usize::try_from(size).ok())
                    .filter(|size| (1..=MAX_PIPE_BUFFER).contains(size))
                    .ok_or(EINVAL)?;
                self.set_pipe_buffer(size);
                return Ok(0);
            }
            SCULL_P_IOCQSIZE => return Ok(as_c_int(self.pipe_buffer()) as isize),
            _ => {}
        }
        // Wrong magic, number, direction or size alike.
        let (op, setting) = decode(cmd).ok_or(ENOTTY)?;
        if !matches!(op, Op::Get | Op::Query) {
            require_admin()?;
        }
        match op {
            Op::Get => {
                let value = as_c_int(setting.get(self.current()));
                user_int(arg).writer().write(&value)?;
                Ok(0)
            }
            Op::Query => Ok(setting.get(self.current()) as isize),
            Op::Set => {
                let value: c_int = user_int(arg).reader().read()?;
                self.update(|layout| setting.set(layout, value))?;
                Ok(0)
            }
            Op::Tell | Op::Shift => {
                let value = c_int::try_from(arg).map_err(|_| EINVAL)?;
                let old = self.update(|layout| setting.set(layout, value))?;
                Ok(if op == Op::Shift {
                    setting.get(old) as isize
                } else {
                    0
                })
            }
            Op::Exchange => {
                let value: c_int = user_int(arg).reader().read()?;
                // The old value goes back through the pointer the new one came from, written
                // before the change is made, so that a fault changes nothing. The copy may sleep
                // for as long as a page fault takes, so it runs without the settings lock, which
                // every trim takes: the change is made only if the layout is still the one whose
                // value went back, else the exchange starts over.
                loop {
                    let old = self.current();
                    let new = setting.set(old, value)?;
                    user_int(arg).writer().write(&as_c_int(setting.get(old)))?;
                    if self.replace_if(old, new) {
                        return Ok(0);
                    }
                    if fatal_signal_pending() {
                        return Err(EINTR);
                    }
                }
            }
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

#[kunit_tests(scull_ioctl)]
mod tests {
    use super::*;

    // The numbers are written out as x86 and the generic `ioctl.h` encode them (direction in
    // bits 30-31, size in 16-29, magic in 8-15, number in 0-7), not built with `_IO*`, so that
    // a mistake in the constants above cannot hide behind the same mistake here.

    #[test]
    fn the_constants_are_ldd3s_numbers() {
        assert_eq!(SCULL_IOCRESET, 0x6b00);
        assert_eq!(SCULL_IOCSQUANTUM, 0x4004_6b01);
        assert_eq!(SCULL_IOCGQSET, 0x8004_6b06);
        assert_eq!(SCULL_IOCXQSET, 0xc004_6b0a);
        assert_eq!(SCULL_IOCHQSET, 0x6b0c);
        assert_eq!(SCULL_P_IOCTSIZE, 0x6b0d);
        assert_eq!(SCULL_P_IOCQSIZE, 0x6b0e);
    }

    #[test]
    fn every_command_decodes_to_its_op_and_setting() {
        let expected = [
            (0x4004_6b01, Op::Set, Setting::Quantum),
            (0x4004_6b02, Op::Set, Setting::Qset),
            (0x6b03, Op::Tell, Setting::Quantum),
            (0x6b04, Op::Tell, Setting::Qset),
            (0x8004_6b05, Op::Get, Setting::Quantum),
            (0x8004_6b06, Op::Get, Setting::Qset),
            (0x6b07, Op::Query, Setting::Quantum),
            (0x6b08, Op::Query, Setting::Qset),
            (0xc004_6b09, Op::Exchange, Setting::Quantum),
            (0xc004_6b0a, Op::Exchange, Setting::Qset),
            (0x6b0b, Op::Shift, Setting::Quantum),
            (0x6b0c, Op::Shift, Setting::Qset),
        ];
        for (cmd, op, setting) in expected {
            assert_eq!(decode(cmd), Some((op, setting)));
        }
    }

    #[test]
    fn reset_and_the_pipe_size_are_not_decoded() {
        // `Settings::ioctl` handles them before decoding: they have no layout setting.
        assert_eq!(decode(SCULL_IOCRESET), None);
        assert_eq!(decode(SCULL_P_IOCTSIZE), None);
        assert_eq!(decode(SCULL_P_IOCQSIZE), None);
    }

    #[test]
    fn wrong_magic_is_refused() {
        assert_eq!(decode(0x6a03), None);
        assert_eq!(decode(0x8004_6a05), None);
    }

    #[test]
    fn wrong_number_is_refused() {
        assert_eq!(decode(0x6b0f), None);
        assert_eq!(decode(0x6bff), None);
    }

    #[test]
    fn wrong_size_is_refused() {
        assert_eq!(decode(0x8008_6b05), None);
        assert_eq!(decode(0x4000_6b01), None);
    }

    #[test]
    fn wrong_direction_is_refused() {
        // GQUANTUM's number with S's direction, SQUANTUM's with G's, and T's with X's.
        assert_eq!(decode(0x4004_6b05), None);
        assert_eq!(decode(0x8004_6b01), None);
        assert_eq!(decode(0xc004_6b03), None);
        assert_eq!(decode(0x6b01), None);
    }
}
