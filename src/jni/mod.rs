//! The JNI boundary: the only module that knows about the JVM.
//!
//! Every export is a short shim in [`exports`] that converts arguments, calls the core, and
//! lets [`error::Throw`] turn a core error into a typed Java exception and a panic into
//! `NativePanicException`. Nothing here attaches a thread to the JVM: only Java threads call
//! in, and native log records are pulled by a Java thread ([`crate::logging::poll`]).
#![deny(clippy::unwrap_used)]

mod checkpoint;
mod coordinator;
mod error;
mod exports;
mod handle;
mod utils;

use std::ffi::c_void;

use jni::sys::{jint, JNI_VERSION_1_8};

/// Called once when the JVM loads the library.
#[unsafe(no_mangle)]
pub extern "system" fn JNI_OnLoad(_vm: *mut jni::sys::JavaVM, _reserved: *mut c_void) -> jint {
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
    JNI_VERSION_1_8
}
