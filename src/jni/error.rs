//! The one error policy for every export.
//!
//! Core errors become the Java exception class for their kind (all subclasses of
//! `org.apache.samza.azure.errors.AzureCoordinationException`); JNI failures and panics become
//! `NativePanicException`/`AzureCoordinationException` with code INTERNAL. An exception that
//! Java code already threw (pending) is left to propagate unchanged.

use std::any::Any;

use jni::errors::ErrorPolicy;
use jni::strings::JNIString;
use jni::Env;

use crate::error::{Error as CoreError, ErrorKind};

const PKG: &str = "org/apache/samza/azure/errors/";

/// Java exception class (binary name with '/') for each error kind.
pub fn exception_class(kind: ErrorKind) -> String {
    let simple = match kind {
        ErrorKind::Config => "AzureConfigException",
        ErrorKind::NotFound => "StorageNotFoundException",
        ErrorKind::AlreadyExists => "StorageAlreadyExistsException",
        ErrorKind::PreconditionFailed => "PreconditionFailedException",
        ErrorKind::LeaseHeld => "LeaseHeldException",
        ErrorKind::LeaseLost => "LeaseLostException",
        ErrorKind::Transient => "TransientStorageException",
        ErrorKind::OutcomeUnknown => "OutcomeUnknownException",
        ErrorKind::Authentication => "StorageAuthenticationException",
        ErrorKind::BadRequest => "StorageBadRequestException",
        ErrorKind::Internal => "AzureCoordinationException",
        ErrorKind::Fenced => "FencedWriteException",
    };
    format!("{PKG}{simple}")
}

/// What a native call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("JNI: {0}")]
    Jni(#[from] jni::errors::Error),
}

pub type BridgeResult<T> = std::result::Result<T, BridgeError>;

pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

fn throw(env: &mut Env<'_>, class: &str, message: &str) {
    let message = crate::redact::scrub(message);
    if env
        .throw_new(JNIString::from(class), JNIString::from(&message))
        .is_err()
        && !env.exception_check()
    {
        // The class could not be found (broken jar?): fall back to a JDK class.
        let _ = env.throw_new(
            JNIString::from("java/lang/IllegalStateException"),
            JNIString::from(format!("[{class} unavailable] {message}")),
        );
    }
}

/// Throws the typed exception for an error or a panic and returns the default value.
#[derive(Debug, Default)]
pub struct Throw;

impl<T: Default> ErrorPolicy<T, BridgeError> for Throw {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut Self::Captures<'unowned_env_local, 'native_method>,
        err: BridgeError,
    ) -> jni::errors::Result<T> {
        if env.exception_check() {
            return Ok(T::default());
        }
        match err {
            BridgeError::Core(e) => throw(env, &exception_class(e.kind()), e.message()),
            BridgeError::Jni(e) => throw(
                env,
                &exception_class(ErrorKind::Internal),
                &format!("JNI failure: {e}"),
            ),
        }
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut Self::Captures<'unowned_env_local, 'native_method>,
        payload: Box<dyn Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let message = panic_message(payload.as_ref());
        // Dropping a payload can itself panic; leaking it is the lesser evil.
        std::mem::forget(payload);
        if !env.exception_check() {
            throw(
                env,
                &format!("{PKG}NativePanicException"),
                &format!("native panic: {message}"),
            );
        }
        Ok(T::default())
    }
}
