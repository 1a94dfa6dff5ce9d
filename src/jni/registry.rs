//! The contract with `Native.java`: which Rust function implements which `static native`
//! method, checked at both ends.
//!
//! Each file writes its methods once, as the fns of a `#[natives] impl Natives` block (the
//! `macros/` crate): a fn's name and parameters are the Java method's, in the `jni` crate's
//! signature syntax (`fn storage_stats(env: Env, h: jlong) -> [jlong]` is `long[]
//! storageStats(long)`; `[T]` is an array, no result is `void`, and `env: Env`, which Java does
//! not pass, is there only when the body needs it). The attribute completes each fn into its JNI
//! form, returning `BridgeResult<…>` under the one error policy, [`Throw`], and lists it in
//! `Natives::TABLE` through `jni`'s `native_method!`, which derives the JNI name and descriptor
//! and type-checks the completed fn against them. When the JVM loads the library, [`register`]
//! binds every entry with `RegisterNatives`, which refuses a name or descriptor that
//! `Native.java` does not declare; the library exports no `Java_…` symbols, so nothing links by
//! name alone. Java then compares its own `native` declarations with `registeredNatives()` both
//! ways (`NativeContract.java`), so a method declared in Java but missing here fails at load
//! too, instead of at its first call.
//!
//! [`Throw`]: super::error::Throw

use std::ffi::CStr;

use jni::objects::JString;
use jni::strings::JNIString;
use jni::{Env, NativeMethod};
use samza_azure_coordinator_macros::natives;

use super::convert::string_array;

/// The natives of `Native.java` this file implements: the contract's own.
pub(super) struct Natives;

/// The Java class whose `static native` methods the tables implement.
pub const NATIVE_CLASS: &str = "org/apache/samza/azure/jni/Native";

#[natives]
impl Natives {
    /// What Java checks its own declarations against.
    fn registered_natives(env: Env) -> [JString] {
        string_array(env, described().into_iter())
    }
}

/// Every table, in the order of `Native.java`'s sections.
fn tables() -> [&'static [NativeMethod<'static>]; 7] {
    [
        Natives::TABLE,
        super::payloads::Natives::TABLE,
        super::diagnostics::Natives::TABLE,
        super::storage_client::Natives::TABLE,
        super::coordinator::Natives::TABLE,
        super::checkpoints::Natives::TABLE,
        super::coordination_utils::Natives::TABLE,
    ]
}

/// `name` + JNI descriptor of one entry, as Java spells it: `storageStats(J)[J`.
fn describe(method: &NativeMethod<'_>) -> String {
    // SAFETY: `NativeMethod` is a documented `#[repr(transparent)]` wrapper of
    // `JNINativeMethod`, and `native_method!` fills both strings with NUL-terminated 'static
    // literals.
    let raw = unsafe { &*(method as *const NativeMethod<'_>).cast::<jni::sys::JNINativeMethod>() };
    let name = unsafe { CStr::from_ptr(raw.name) }.to_string_lossy();
    let signature = unsafe { CStr::from_ptr(raw.signature) }.to_string_lossy();
    format!("{name}{signature}")
}

/// Every method the library implements, described as by [`describe`].
pub fn described() -> Vec<String> {
    tables()
        .iter()
        .flat_map(|t| t.iter().map(describe))
        .collect()
}

/// Binds every table to `Native`. Each method is registered alone, so the error names every
/// one that `Native.java` lacks or declares differently, not only the first.
pub fn register(env: &mut Env<'_>) -> Result<(), String> {
    let class = env
        .find_class(JNIString::from(NATIVE_CLASS))
        .map_err(|e| format!("cannot find {NATIVE_CLASS}: {e}"))?;
    let mut refused = Vec::new();
    for method in tables().iter().flat_map(|t| t.iter()) {
        // SAFETY: every entry comes from `native_method!`, whose wrapper has the declared
        // signature and takes the class as a static method must.
        let bound = unsafe { env.register_native_methods(&class, std::slice::from_ref(method)) };
        match bound {
            Ok(()) => {}
            // The JVM's message only repeats the descriptor.
            Err(jni::errors::Error::NoSuchMethod(_)) => refused.push(describe(method)),
            Err(e) => refused.push(format!("{} ({e})", describe(method))),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "this library implements native methods that {} does not declare so: {}",
            NATIVE_CLASS.replace('/', "."),
            refused.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_declared_once() {
        let all = described();
        let mut names: Vec<&str> = all
            .iter()
            .map(|d| d.split('(').next().unwrap_or(d))
            .collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        // Java has no overloads among its natives; two entries of one name would be a typo.
        assert_eq!(before, names.len(), "{all:?}");
        assert!(all.contains(&"storageStats(J)[J".to_owned()), "{all:?}");
    }
}
