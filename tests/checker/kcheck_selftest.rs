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
            description: "0: nothing, 1: leak 1 KiB, 2: WARN, 3: lock-order inversion",
        },
    },
}

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
                let leaked = KBox::leak(KBox::new([0x5a_u8; 1024], GFP_KERNEL)?);
                pr_info!("leaking 1 KiB at {:p} on purpose\n", leaked);
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
