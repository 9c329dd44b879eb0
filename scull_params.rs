// SPDX-License-Identifier: GPL-2.0

//! scull's module parameters, checked once at load: [`Config`].

use crate::{
    chrdev::{
        MAX_MAJOR,
        MAX_MINOR, //
    },
    meminfo, module_parameters,
    scull_layout::{
        Layout,
        LayoutError,
        MAX_QSET,
        MAX_QUANTUM, //
    },
    scull_pipe::MAX_PIPE_BUFFER,
};
use kernel::prelude::*;

/// Most devices one module instance offers: enough to experiment, small enough to stay sane.
const MAX_DEVICES: u32 = 1024;

/// Most scullpipe devices.
const MAX_PIPES: u32 = 64;

/// `scullsingle`, `sculluid`, `scullwuid` and `scullpriv`, after the pipes, as in LDD3.
pub(crate) const ACCESS_DEVICES: u32 = 4;

/// The module parameters, checked.
pub(crate) struct Config {
    pub(crate) major: u32,
    pub(crate) first_minor: u32,
    /// All the minors: scull's, the pipes' and the access devices', in that order.
    pub(crate) minors: u32,
    pub(crate) nr_devs: u32,
    pub(crate) layout: Layout,
    pub(crate) pipes: u32,
    pub(crate) pipe_buffer: usize,
    pub(crate) mem_limit: u64,
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
    ///
    /// # Errors
    ///
    /// `EINVAL` for a parameter out of its bounds, after a log line that names it and them.
    pub(crate) fn from_params() -> Result<Self> {
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
