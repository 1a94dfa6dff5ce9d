//! Native objects handed to Java as `long` handles.
//!
//! A handle is a pointer to a boxed `Tagged<T>` whose tag identifies the type. Zero is refused.
//! The tag check is a best-effort guard against a handle of another type passed by mistake; it
//! cannot make a freed handle safe, since reading the tag of freed memory is itself a use after
//! free (the tag is cleared before the box is dropped, which catches some such reads, not all).
//! What rules out use after free is the Java side: NativeHandle.java runs `destroy` once, and
//! only after every in-flight call has returned.

use jni::sys::jlong;

use crate::error::{Error, Result};

/// Implemented by every type that crosses the boundary as a handle.
pub trait HandleType: Send + Sync + 'static {
    const TAG: u64;
    /// The Java class holding this handle, which NativeHandle.java's own errors also name.
    const NAME: &'static str;
}

struct Tagged<T> {
    tag: u64,
    value: T,
}

pub fn into_handle<T: HandleType>(value: T) -> jlong {
    Box::into_raw(Box::new(Tagged { tag: T::TAG, value })) as jlong
}

/// Borrows the object behind `handle` for the duration of one native call.
///
/// # Safety contract (upheld by NativeHandle.java)
/// `handle` came from [`into_handle`] with the same `T` and has not been destroyed.
pub fn borrow<'a, T: HandleType>(handle: jlong) -> Result<&'a T> {
    if handle == 0 {
        return Err(Error::internal(format!("null {} handle", T::NAME)));
    }
    // SAFETY: per the contract above the pointer is live; the tag check then catches a live
    // handle of another type passed by mistake.
    let tagged = unsafe { &*(handle as *const Tagged<T>) };
    if tagged.tag != T::TAG {
        return Err(Error::internal(format!("handle is not a live {}", T::NAME)));
    }
    Ok(&tagged.value)
}

/// Frees the object. Zero is ignored, so a double close from Java is harmless.
pub fn destroy<T: HandleType>(handle: jlong) -> Result<()> {
    if handle == 0 {
        return Ok(());
    }
    borrow::<T>(handle)?;
    // SAFETY: live and of type T (checked above); Java calls this at most once per handle.
    let mut boxed = unsafe { Box::from_raw(handle as *mut Tagged<T>) };
    boxed.tag = 0;
    drop(boxed);
    Ok(())
}
