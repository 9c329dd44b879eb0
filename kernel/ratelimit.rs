// SPDX-License-Identifier: GPL-2.0

//! Rate limiting for log lines that user space can trigger at will, [`RateLimit`]: C's
//! `printk_ratelimited()` policy, at most [`BURST`] lines per [`INTERVAL_MS`] window, and a
//! count of what was suppressed once the next window opens.
//!
//! C header: [`include/linux/ratelimit.h`](srctree/include/linux/ratelimit.h)
//!
//! Staging for `kernel::ratelimit`, next to `kernel::print`.
//!
//! # Examples
//!
//! ```
//! # use crate::ratelimit::{RateLimit, BURST};
//! # use kernel::prelude::*;
//! let limit = KBox::pin_init(RateLimit::new(), GFP_KERNEL)?;
//! let mut logged = 0;
//! for event in 0..100 {
//!     if let Some(suppressed) = limit.allow() {
//!         if suppressed > 0 {
//!             pr_info!("{suppressed} messages suppressed\n");
//!         }
//!         pr_info!("event {event}\n");
//!         logged += 1;
//!     }
//! }
//! // A hundred events at once, and only the first `BURST` are logged.
//! assert_eq!(logged, BURST);
//! # Ok::<(), Error>(())
//! ```
//!
//! Out-of-tree crates never run doctests: KUnit suite `scull_ratelimit` runs this example.

use core::ptr;

use kernel::{
    bindings,
    ffi::c_ulong,
    new_mutex,
    prelude::*,
    sync::Mutex,
    time::msecs_to_jiffies, //
};

/// Lines allowed per window (C's `DEFAULT_RATELIMIT_BURST`).
pub(crate) const BURST: u32 = 10;

/// Length of a window in milliseconds (C's `DEFAULT_RATELIMIT_INTERVAL`, 5 s).
pub(crate) const INTERVAL_MS: u32 = 5000;

/// The current value of the kernel's tick counter, `jiffies`.
fn jiffies_now() -> c_ulong {
    // SAFETY: `jiffies` is a valid, aligned `unsigned long` for the kernel's whole life. The
    // timer interrupt updates it, so it is read once, with a volatile read, as C's `volatile`
    // declaration does; a machine word is read whole on every architecture Linux supports.
    unsafe { ptr::read_volatile(&raw const bindings::jiffies) }
}

struct Window {
    /// `jiffies` when the window opened.
    start: c_ulong,
    printed: u32,
    suppressed: u32,
}

/// Allows [`BURST`] events per [`INTERVAL_MS`] window.
#[pin_data]
pub(crate) struct RateLimit {
    #[pin]
    window: Mutex<Window>,
}

impl RateLimit {
    /// A limiter whose first window starts now.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            window <- new_mutex!(
                Window {
                    start: jiffies_now(),
                    printed: 0,
                    suppressed: 0,
                },
                "RateLimit::window"
            ),
        })
    }

    /// `Some(suppressed)` when the caller may log now, with the number of events suppressed
    /// since it last could (to report first, if not zero); `None` when it must stay quiet.
    pub(crate) fn allow(&self) -> Option<u32> {
        let mut window = self.window.lock();
        let now = jiffies_now();
        if now.wrapping_sub(window.start) >= msecs_to_jiffies(INTERVAL_MS) {
            let suppressed = window.suppressed;
            *window = Window {
                start: now,
                printed: 1,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if window.printed < BURST {
            window.printed += 1;
            return Some(0);
        }
        window.suppressed = window.suppressed.saturating_add(1);
        None
    }
}

#[kunit_tests(scull_ratelimit)]
mod tests {
    use super::*;

    /// The module's example, as it is written there.
    #[test]
    fn example() -> Result {
        let limit = KBox::pin_init(RateLimit::new(), GFP_KERNEL)?;
        let mut logged = 0;
        for event in 0..100 {
            if let Some(suppressed) = limit.allow() {
                if suppressed > 0 {
                    pr_info!("{suppressed} messages suppressed\n");
                }
                pr_info!("event {event}\n");
                logged += 1;
            }
        }
        // A hundred events at once, and only the first `BURST` are logged.
        assert_eq!(logged, BURST);
        Ok(())
    }
}
