// SPDX-License-Identifier: GPL-2.0

//! A test-only module that misbehaves on purpose at load time, so that the checker's own
//! tests (`tests/checker/`) can prove the checker notices. Never loaded by the normal run.

use kernel::{
    new_mutex,
    new_spinlock,
    prelude::*,
    sync::Mutex,
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    }, //
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
            description: "0: nothing, 1: leak, 2: WARN, 3: lock-order inversion, 4: hung task, 5: soft lockup and RCU stall, 6: panic",
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

/// How long `misbehave=4` sleeps in state D and `misbehave=5` spins: well past the thresholds
/// that the checker's tests set for the hung-task detector (1 s), the soft-lockup detector
/// (2 s) and RCU's stall warnings (3 s, the least it takes, plus the 5 s that
/// CONFIG_PROVE_RCU adds), and short enough to keep the checker's run quick.
const HUNG_FOR: Delta = Delta::from_secs(5);
const SPIN_FOR: Delta = Delta::from_secs(12);

/// Spins for `SPIN_FOR` under a spinlock: preemption stays off, so the CPU neither schedules
/// nor reports an RCU quiescent state.
fn spin_with_preemption_off() -> Result {
    let lock = KBox::pin_init(new_spinlock!((), "kcheck_selftest::spin"), GFP_KERNEL)?;
    let _guard = lock.lock();
    let start = Instant::<Monotonic>::now();
    while start.elapsed() < SPIN_FOR {}
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
            // `fsleep` of more than 20 ms is `msleep`: one uninterruptible sleep.
            4 => fsleep(HUNG_FOR),
            5 => spin_with_preemption_off()?,
            6 => panic!("kcheck_selftest panics on purpose"),
            other => {
                pr_err!("misbehave={other} is not a known misbehaviour\n");
                return Err(EINVAL);
            }
        }
        Ok(Self)
    }
}
