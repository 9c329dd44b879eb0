// SPDX-License-Identifier: GPL-2.0

//! A test-only module that misbehaves on purpose at load time, so that the checker's own
//! tests (`tests/checker/`) can prove the checker notices. Never loaded by the normal run.

use kernel::{
    new_mutex,
    prelude::*,
    sync::Mutex, //
};

module! {
    type: KcheckSelftest,
    name: "kcheck_selftest",
    authors: ["scull-rs developers"],
    description: "Misbehaves on purpose to test scull-rs's kernel-log and kmemleak checks",
    license: "GPL",
    params: {
        misbehave: i32 {
            default: 0,
            description: "0: nothing, 1: leak 64 objects, 2: WARN, 3: lock-order inversion",
        },
    },
}

/// How many objects `misbehave=1` leaks, and how large each is (scull's quanta are of that
/// order too). Stale copies of a few addresses can linger in memory that kmemleak scans,
/// which hides those objects: leaking many keeps the test meaningful.
const LEAKED_OBJECTS: usize = 64;
const LEAKED_SIZE: usize = 3000;

/// Two locks of distinct lockdep classes.
#[pin_data]
struct LockPair {
    #[pin]
    first: Mutex<()>,
    #[pin]
    second: Mutex<()>,
}

/// Takes two locks in one order, then in the other: lockdep reports a possible deadlock.
fn invert_lock_order() -> Result {
    let pair = KBox::pin_init(
        pin_init!(LockPair {
            first <- new_mutex!((), "kcheck_selftest::first"),
            second <- new_mutex!((), "kcheck_selftest::second"),
        }),
        GFP_KERNEL,
    )?;
    {
        let _first = pair.first.lock();
        let _second = pair.second.lock();
    }
    let _second = pair.second.lock();
    let _first = pair.first.lock();
    Ok(())
}

struct KcheckSelftest;

impl kernel::Module for KcheckSelftest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        match module_parameters::misbehave.value() {
            0 => {}
            1 => {
                for _ in 0..LEAKED_OBJECTS {
                    KBox::leak(KBox::new([0x5a_u8; LEAKED_SIZE], GFP_KERNEL)?);
                }
                pr_info!("leaked {LEAKED_OBJECTS} objects of {LEAKED_SIZE} bytes on purpose\n");
            }
            2 => {
                kernel::warn_on!(true);
            }
            3 => invert_lock_order()?,
            other => {
                pr_err!("misbehave={other} is not a known misbehaviour\n");
                return Err(EINVAL);
            }
        }
        Ok(Self)
    }
}
