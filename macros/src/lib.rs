//! `#[natives]`, how `src/jni/` writes the `static native` methods of `Native.java`: each
//! method's parameter list once, as the fn that implements it.
//!
//! On an `impl` block of a marker type, every fn is one native, its name the Java method's in
//! snake case and its parameters and result in the `jni` crate's signature syntax, as far as it
//! is Rust: primitives (`jint`), references (`JString`), arrays as `[T]`, no result for `void`.
//! A leading `env: Env` is the JNI environment, for a body that needs it; Java does not pass it.
//!
//! ```ignore
//! #[natives]
//! impl Natives {
//!     /// `String leaseAcquire(long, String, String, int, String)`
//!     fn lease_acquire(env: Env, h: jlong, container: JString, name: JString, seconds: jint,
//!                      proposed: JString) -> JString {
//!         …
//!     }
//! }
//! ```
//!
//! The attribute turns each fn into the form `native_method!` calls, so that nothing but the
//! parameter list is written: the lifetime `'l`, `&mut Env<'l>` (unused `_env` where none is
//! named), the `JClass` a static method receives, the `jni` types of arrays
//! (`JObjectArray<'l, JString<'l>>`, `JByteArray<'l>`) and the result as
//! `BridgeResult<T>`, which the body returns. Doc comments and other attributes stay. It adds
//! `Natives::TABLE`, one `native_method!` entry per fn in the block's order, which derives the
//! JNI name and descriptor from the written signature, type-checks the completed fn against
//! them and runs it under the crate's one error policy, `crate::jni::error::Throw` (errors and
//! panics become Java exceptions). Whether the descriptor is the one `Native.java` declares is
//! checked when the library loads (`RegisterNatives`, then `NativeContract` the other way).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, ToTokens};
use syn::spanned::Spanned;
use syn::{
    parse_quote, FnArg, ImplItem, ImplItemFn, ItemImpl, Lifetime, Pat, ReturnType, Type, TypePath,
};

const PRIMITIVES: [&str; 8] = [
    "jboolean", "jbyte", "jchar", "jshort", "jint", "jlong", "jfloat", "jdouble",
];

/// See the crate docs.
#[proc_macro_attribute]
pub fn natives(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let block = syn::parse_macro_input!(item as ItemImpl);
    match expand(attr, block) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(attr: TokenStream2, mut block: ItemImpl) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new(
            attr.span(),
            "#[natives] takes no arguments",
        ));
    }
    let Type::Path(TypePath {
        qself: None,
        path: owner,
    }) = block.self_ty.as_ref()
    else {
        return Err(syn::Error::new(
            block.self_ty.span(),
            "#[natives] goes on `impl Type`",
        ));
    };
    let owner = owner.clone();
    let mut entries = Vec::new();
    for item in &mut block.items {
        let ImplItem::Fn(native) = item else {
            return Err(syn::Error::new(
                item.span(),
                "a #[natives] block holds only natives",
            ));
        };
        entries.push(declare(native, &owner)?);
    }
    let table: ImplItem = parse_quote! {
        /// Every native of this block, for `RegisterNatives`, in the block's order.
        pub const TABLE: &'static [::jni::NativeMethod<'static>] = {
            // `native_method!` takes the policy as a bare name.
            use crate::jni::error::Throw;
            &[#(#entries),*]
        };
    };
    block.items.insert(0, table);
    Ok(quote!(#block))
}

/// Writes `native`'s JNI signature in place and returns its `native_method!` entry.
fn declare(native: &mut ImplItemFn, owner: &syn::Path) -> syn::Result<TokenStream2> {
    let sig = &mut native.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a native takes no generics: #[natives] adds the lifetime 'l",
        ));
    }
    let lt = Lifetime::new("'l", Span::call_site());
    let mut inputs: Vec<FnArg> = sig.inputs.iter().cloned().collect();
    // The Env, written or not, then the class of a static method: what JNI passes first.
    let env: FnArg = match inputs.first() {
        Some(FnArg::Typed(first)) if is_env(&first.ty) => {
            let (pat, env) = (&first.pat, &first.ty);
            let env = parse_quote!(#pat: &mut #env<#lt>);
            inputs.remove(0);
            env
        }
        _ => parse_quote!(_env: &mut ::jni::Env<#lt>),
    };
    let mut java_params = Vec::new();
    for input in &mut inputs {
        let FnArg::Typed(param) = input else {
            return Err(syn::Error::new(
                input.span(),
                "a native is a static method: no self",
            ));
        };
        let Pat::Ident(name) = param.pat.as_ref() else {
            return Err(syn::Error::new(
                param.pat.span(),
                "a native's parameter is a plain name",
            ));
        };
        let (name, java) = (&name.ident, &param.ty);
        java_params.push(quote!(#name: #java));
        let rust = rust_type(java, &lt)?;
        *param.ty = rust;
    }
    let (java_return, rust_return) = match &sig.output {
        ReturnType::Default => (quote!(), quote!(())),
        ReturnType::Type(_, java) => (quote!(-> #java), rust_type(java, &lt)?.to_token_stream()),
    };
    sig.output = parse_quote!(-> crate::jni::error::BridgeResult<#rust_return>);
    sig.generics = parse_quote!(<#lt>);
    sig.inputs = [env, parse_quote!(_class: ::jni::objects::JClass<#lt>)]
        .into_iter()
        .chain(inputs)
        .collect();
    // Java fixes the arity.
    native
        .attrs
        .push(parse_quote!(#[allow(clippy::too_many_arguments)]));
    let name = &sig.ident;
    Ok(quote! {
        ::jni::native_method! {
            jni = ::jni,
            error_policy = Throw,
            static fn #name(#(#java_params),*) #java_return,
            fn = #owner::#name,
        }
    })
}

/// `env: Env`, the parameter a native names to use the JNI environment.
fn is_env(ty: &Type) -> bool {
    matches!(ty, Type::Path(TypePath { qself: None, path }) if path.is_ident("Env"))
}

/// The Rust type for a signature type: a primitive stays, a reference type gets the lifetime
/// (`JString<'l>`), and an array is the `jni` crate's (`[JString]` is
/// `JObjectArray<'l, JString<'l>>`, `[jlong]` is `JLongArray<'l>`).
fn rust_type(java: &Type, lt: &Lifetime) -> syn::Result<Type> {
    let unsupported = || {
        syn::Error::new(
            java.span(),
            "a native's types are jni primitives (jint, …), jni references (JString, …) and \
             arrays of them ([JString], [jbyte])",
        )
    };
    match java {
        Type::Path(TypePath { qself: None, path }) => {
            let ident = path.get_ident().ok_or_else(unsupported)?;
            let name = ident.to_string();
            if PRIMITIVES.contains(&name.as_str()) {
                Ok(java.clone())
            } else if name.starts_with('J') {
                Ok(parse_quote!(#ident<#lt>))
            } else {
                Err(unsupported())
            }
        }
        Type::Slice(array) => {
            let element = rust_type(&array.elem, lt)?;
            match primitive_name(&array.elem) {
                Some(primitive) => {
                    // jbyte → JByteArray, and so on.
                    let mut chars = primitive[1..].chars();
                    let first = chars.next().ok_or_else(unsupported)?.to_ascii_uppercase();
                    let array = format_ident!("J{first}{}Array", chars.as_str());
                    Ok(parse_quote!(::jni::objects::#array<#lt>))
                }
                None => Ok(parse_quote!(::jni::objects::JObjectArray<#lt, #element>)),
            }
        }
        Type::Tuple(unit) if unit.elems.is_empty() => Ok(java.clone()),
        _ => Err(unsupported()),
    }
}

fn primitive_name(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(TypePath { qself: None, path }) => path
            .get_ident()
            .map(|i| i.to_string())
            .filter(|n| PRIMITIVES.contains(&n.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rust(java: &str) -> String {
        let java: Type = syn::parse_str(java).expect("a type");
        let lt = Lifetime::new("'l", Span::call_site());
        let rust = rust_type(&java, &lt).expect("a native type");
        rust.to_token_stream().to_string().replace(' ', "")
    }

    #[test]
    fn signature_types_become_jni_types() {
        assert_eq!(rust("jlong"), "jlong");
        assert_eq!(rust("JString"), "JString<'l>");
        assert_eq!(
            rust("[JString]"),
            "::jni::objects::JObjectArray<'l,JString<'l>>"
        );
        assert_eq!(
            rust("[JObject]"),
            "::jni::objects::JObjectArray<'l,JObject<'l>>"
        );
        assert_eq!(rust("[jbyte]"), "::jni::objects::JByteArray<'l>");
        assert_eq!(rust("[jlong]"), "::jni::objects::JLongArray<'l>");
        assert_eq!(rust("[jboolean]"), "::jni::objects::JBooleanArray<'l>");
    }

    #[test]
    fn other_types_are_refused() {
        let lt = Lifetime::new("'l", Span::call_site());
        for java in ["String", "&str", "Vec<JString>", "i64"] {
            let java: Type = syn::parse_str(java).expect("a type");
            assert!(rust_type(&java, &lt).is_err(), "{}", java.to_token_stream());
        }
    }

    #[test]
    fn a_native_gets_its_jni_signature_and_entry() {
        let mut block: ItemImpl = parse_quote! {
            impl Natives {
                /// Kept.
                fn lease_renew(env: Env, h: jlong, tasks: [JString]) {
                    Ok(())
                }
                fn storage_close(h: jlong) -> [jbyte] {
                    todo!()
                }
            }
        };
        let ImplItem::Fn(renew) = &mut block.items[0] else {
            panic!("a fn")
        };
        let entry = declare(renew, &parse_quote!(Natives)).expect("declared");
        let sig = renew.sig.to_token_stream().to_string().replace(' ', "");
        assert_eq!(
            sig,
            "fnlease_renew<'l>(env:&mutEnv<'l>,_class:::jni::objects::JClass<'l>,h:jlong,\
             tasks:::jni::objects::JObjectArray<'l,JString<'l>>)\
             ->crate::jni::error::BridgeResult<()>"
        );
        assert!(renew.attrs.iter().any(|a| a.path().is_ident("doc")));
        let entry = entry.to_string().replace(' ', "");
        assert!(
            entry.contains("staticfnlease_renew(h:jlong,tasks:[JString]),fn=Natives::lease_renew"),
            "{entry}"
        );
        let ImplItem::Fn(close) = &mut block.items[1] else {
            panic!("a fn")
        };
        declare(close, &parse_quote!(Natives)).expect("declared");
        let sig = close.sig.to_token_stream().to_string().replace(' ', "");
        assert!(
            sig.starts_with("fnstorage_close<'l>(_env:&mut::jni::Env<'l>,"),
            "{sig}"
        );
        assert!(
            sig.ends_with("BridgeResult<::jni::objects::JByteArray<'l>>"),
            "{sig}"
        );
    }
}
