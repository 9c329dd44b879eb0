// SPDX-License-Identifier: GPL-2.0

//! complete: LDD3's completion example (chapter 5), in Rust, built as `complete.ko`.
//!
//! This file is the module: one misc device, `/dev/complete`, whose file operations are in
//! `complete_fops.rs`.

mod complete_fops;

#[path = "kernel/fs/file_ops.rs"]
mod file_ops;
#[path = "kernel/fs/kiocb.rs"]
mod kiocb;
#[path = "kernel/miscdevice.rs"]
mod miscdevice;
#[path = "kernel/ratelimit.rs"]
mod ratelimit;
#[path = "kernel/task.rs"]
mod task;
#[path = "kernel/sync/wake_handoff.rs"]
mod wake_handoff;

use complete_fops::{
    CompleteFile,
    Shared, //
};
use kernel::{
    prelude::*,
    sync::Arc, //
};

module! {
    type: CompleteModule,
    name: "complete",
    authors: ["scull-rs developers"],
    description: "LDD3's completion example: a read sleeps until a write completes it",
    license: "GPL",
}

#[pin_data]
struct CompleteModule {
    #[pin]
    _device: miscdevice::Registration<CompleteFile>,
}

impl kernel::InPlaceModule for CompleteModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _device <- miscdevice::Registration::new(
                c"complete",
                Arc::pin_init(Shared::new(), GFP_KERNEL)?,
            ),
        })
    }
}
