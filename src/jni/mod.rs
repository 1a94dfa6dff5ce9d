//! The JNI boundary: the only module that knows about the JVM.
//!
//! - [`registry`]: the contract with `Native.java` (every native method written once, as a fn of
//!   a `#[natives]` block, bound by `RegisterNatives` when the library loads, checked from both
//!   sides).
//! - One file per Java wrapper, holding its natives: [`storage_client`] (`AzureStorageClient`),
//!   [`coordinator`] (`NativeCoordinator`), [`checkpoints`] (`NativeCheckpoints`),
//!   [`coordination_utils`] (`NativeGroup`, `NativeLease`), [`diagnostics`] (runtime, logging,
//!   tests).
//! - [`payloads`]: the layout of every structured result sent as a flat array, which Java's
//!   decoders are checked against.
//! - [`convert`]: argument and result conversions they share; [`handle`]: native objects as
//!   `long` handles; [`error`]: the one policy turning a core error into a typed Java exception
//!   and a panic into `NativePanicException`.
//!
//! Nothing here attaches a thread to the JVM: only Java threads call in, and native log records
//! are pulled by a Java thread ([`crate::logging::poll`]).
#![deny(clippy::unwrap_used)]

mod checkpoints;
mod convert;
mod coordination_utils;
mod coordinator;
mod diagnostics;
mod error;
mod handle;
mod payloads;
mod registry;
mod storage_client;

use std::ffi::c_void;

use jni::strings::JNIString;
use jni::sys::{jint, JNI_VERSION_1_8};
use jni::JavaVM;

/// Called once when the JVM loads the library, on the Java thread loading it.
#[unsafe(no_mangle)]
pub extern "system" fn JNI_OnLoad(vm: *mut jni::sys::JavaVM, _reserved: *mut c_void) -> jint {
    // Panics still become Java exceptions (see error.rs); the hook makes them visible in the
    // Java log as well instead of only on stderr.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(target: "samza_azure_coordinator::panic", "native panic at {location}: {}", error::panic_message(info.payload()));
        if std::env::var_os("SAMZA_AZURE_PANIC_STDERR").is_some() {
            default_hook(info);
        }
    }));
    // SAFETY: the JVM passes its own, valid pointer. The loading thread is a Java thread, so
    // getting its Env attaches nothing.
    let vm = unsafe { JavaVM::from_raw(vm) };
    let bound = vm.with_local_frame(8, |env| -> jni::errors::Result<()> {
        if let Err(mismatch) = registry::register(env) {
            // Left pending, the JVM throws it from System.load: the load fails, naming the
            // methods, instead of the first call failing later. The JVM's own class for a
            // refused registration; NativeLibrary adds the path.
            env.throw_new(
                JNIString::from("java/lang/NoSuchMethodError"),
                JNIString::from(mismatch),
            )?;
        }
        Ok(())
    });
    if bound.is_err() {
        return jni::sys::JNI_ERR;
    }
    JNI_VERSION_1_8
}
