// SPDX-License-Identifier: GPL-2.0

//! Whether the current task holds a capability: C's `capable()`, for the two capabilities
//! LDD3's scull asks about ([`capable_sys_admin`], [`capable_dac_override`]).
//!
//! C header: [`include/linux/capability.h`](srctree/include/linux/capability.h)
//!
//! Staging for `kernel::cred`, which has credentials but no `capable()`.
//!
//! # Examples
//!
//! ```
//! # use crate::capability::capable_sys_admin;
//! # use kernel::prelude::*;
//! /// Changing a setting takes `CAP_SYS_ADMIN`, as in LDD3.
//! fn require_admin() -> Result {
//!     if capable_sys_admin() {
//!         Ok(())
//!     } else {
//!         Err(EPERM)
//!     }
//! }
//!
//! // Kernel threads, such as the one that runs this, hold every capability.
//! require_admin()?;
//! # Ok::<(), Error>(())
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_capability` runs this example.

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

#[kernel::prelude::kunit_tests(scull_capability)]
mod tests {
    use super::*;
    use kernel::prelude::*;

    /// The module's example, as it is written there.
    #[test]
    fn example() -> Result {
        /// Changing a setting takes `CAP_SYS_ADMIN`, as in LDD3.
        fn require_admin() -> Result {
            if capable_sys_admin() {
                Ok(())
            } else {
                Err(EPERM)
            }
        }

        // Kernel threads, such as the one that runs this, hold every capability.
        require_admin()?;
        Ok(())
    }
}
