// SPDX-License-Identifier: GPL-2.0

//! Whether the current task holds a capability.
//!
//! Staging for `kernel::cred` (or a `kernel::capability` next to it): Linux 7.3's Rust API
//! has credentials (`Credential`, `Kuid`) but no way to ask `capable()`. This module offers
//! the two checks LDD3's scull makes, each named for the capability it asks about:
//!
//! - [`capable_sys_admin`]: `capable(CAP_SYS_ADMIN)`, for changing a driver's settings.
//! - [`capable_dac_override`]: `capable(CAP_DAC_OVERRIDE)`, for bypassing an access check.
//!
//! Like C's `capable()`, each check is made against the current task's effective set, and a
//! successful check sets `PF_SUPERPRIV` on the task (it is audited as a use of privilege).
//!
//! C header: [`include/linux/capability.h`](srctree/include/linux/capability.h)
//!
//! # Examples
//!
//! ```ignore
//! if !capability::capable_sys_admin() {
//!     return Err(EPERM);
//! }
//! ```

use kernel::{
    bindings,
    ffi::c_int, //
};

/// Whether the current task has capability `cap` (C's `capable`).
fn capable(cap: u32) -> bool {
    // SAFETY: `capable` may be called from any task context with any capability number.
    unsafe { bindings::capable(cap as c_int) }
}

/// Whether the current task may administer the system (`capable(CAP_SYS_ADMIN)`), which
/// LDD3's scull requires for changing its settings.
pub(crate) fn capable_sys_admin() -> bool {
    capable(bindings::CAP_SYS_ADMIN)
}

/// Whether the current task may bypass file permission checks
/// (`capable(CAP_DAC_OVERRIDE)`), which lets it into LDD3's `sculluid` whoever holds it.
pub(crate) fn capable_dac_override() -> bool {
    capable(bindings::CAP_DAC_OVERRIDE)
}
