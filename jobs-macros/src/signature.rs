//! Analysis of the function under `#[job_executor]`: which parameter is the arguments,
//! which is the context, and what it returns.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

/// The role of one parameter.
pub enum Param {
    /// The deserialized payload, of this type.
    Args(Box<Type>),
    /// The `JobContext`.
    Context,
}

/// An executor function that passed the checks made on its syntax. The checks made on its
/// types (Deserialize, Serialize, Display, Send) are left to the compiler, through the
/// bounds of the generated code.
pub struct Executor<'a> {
    pub item: &'a ItemFn,
    pub params: Vec<Param>,
    pub return_type: &'a Type,
}

impl Executor<'_> {
    pub fn ident(&self) -> &Ident {
        &self.item.sig.ident
    }

    pub fn args_type(&self) -> Option<&Type> {
        self.params.iter().find_map(|p| match p {
            Param::Args(ty) => Some(&**ty),
            Param::Context => None,
        })
    }
}

pub fn analyze(item: &ItemFn) -> syn::Result<Executor<'_>> {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            "a job executor must be an `async fn`: write `async fn`",
        ));
    }
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new(
            constness.span,
            "a job executor cannot be `const`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new(
            unsafety.span,
            "a job executor cannot be `unsafe`: the runtime calls it without an `unsafe` block",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new(
            abi.span(),
            "a job executor cannot declare an ABI",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let span = if sig.generics.params.is_empty() {
            sig.generics.where_clause.span()
        } else {
            sig.generics.span()
        };
        return Err(syn::Error::new(
            span,
            "a job executor cannot be generic: each job type runs one concrete function; write a non-generic `async fn` that calls the generic one",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.span(),
            "a job executor cannot be variadic",
        ));
    }

    let mut params = Vec::new();
    let mut seen_args = false;
    let mut seen_context = false;
    for input in &sig.inputs {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new(
                    receiver.span(),
                    "a job executor must be a free function, not a method: remove `self` and move the function out of the `impl` block",
                ));
            }
            FnArg::Typed(typed) => typed,
        };
        if !matches!(
            &*typed.pat,
            Pat::Ident(_) | Pat::Wild(_) | Pat::Struct(_) | Pat::Tuple(_) | Pat::TupleStruct(_)
        ) {
            return Err(syn::Error::new(
                typed.pat.span(),
                "unsupported parameter pattern: use a name such as `args`",
            ));
        }
        if is_context(&typed.ty) {
            if seen_context {
                return Err(syn::Error::new(
                    typed.ty.span(),
                    "`JobContext` is taken twice: a job executor takes at most one",
                ));
            }
            seen_context = true;
            params.push(Param::Context);
            continue;
        }
        if let Type::Reference(reference) = &*typed.ty {
            let hint = if is_context(&reference.elem) {
                "take the context by value: write `ctx: JobContext`"
            } else {
                "job arguments must be owned, because the payload is deserialized into a new value: take `T` instead of `&T` (e.g. `String` for `&str`)"
            };
            return Err(syn::Error::new(reference.span(), hint));
        }
        if let Type::ImplTrait(impl_trait) = &*typed.ty {
            return Err(syn::Error::new(
                impl_trait.span(),
                "job arguments need a concrete type that implements `serde::Deserialize`, not `impl Trait`",
            ));
        }
        if seen_args {
            return Err(syn::Error::new(
                typed.span(),
                "too many parameters: a job executor takes at most one arguments parameter and one `JobContext`; put the values in one struct that derives `Deserialize`",
            ));
        }
        seen_args = true;
        params.push(Param::Args(typed.ty.clone()));
    }

    let return_type = match &sig.output {
        ReturnType::Default => {
            return Err(syn::Error::new(
                sig.paren_token.span.close(),
                "a job executor must return `Result<T, E>`: add e.g. `-> Result<serde_json::Value, JobError>`",
            ));
        }
        ReturnType::Type(_, ty) => &**ty,
    };
    if !looks_like_result(return_type) {
        return Err(syn::Error::new(
            return_type.span(),
            "a job executor must return `Result<T, E>` with `T: Serialize` and `E: Display`, e.g. `Result<serde_json::Value, JobError>` or `anyhow::Result<Report>`",
        ));
    }
    Ok(Executor {
        item,
        params,
        return_type,
    })
}

/// The spans of `T` and `E` in `Result<T, E>` (or of `T` in an alias such as
/// `anyhow::Result<T>`), falling back to the whole type's span.
pub fn result_arg_spans(ty: &Type) -> (Span, Span) {
    let whole = ty.span();
    let Type::Path(path) = ty else {
        return (whole, whole);
    };
    let Some(PathArguments::AngleBracketed(args)) = path.path.segments.last().map(|s| &s.arguments)
    else {
        return (whole, whole);
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.span()),
        _ => None,
    });
    let output = types.next().unwrap_or(whole);
    let error = types.next().unwrap_or(whole);
    (output, error)
}

/// A path type whose last segment is `JobContext`, without generics. The generated code
/// passes a real `JobContext` to it, so an unrelated type of that name fails to compile.
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().is_some_and(|s| {
                s.ident == "JobContext" && matches!(s.arguments, PathArguments::None)
            })
        }
        Type::Paren(paren) => is_context(&paren.elem),
        Type::Group(group) => is_context(&group.elem),
        _ => false,
    }
}

/// `Result<..>`, `anyhow::Result<..>`, `io::Result<..>`, `JobResult<..>`: a path whose
/// last segment ends in `Result`. The compiler then checks it really is a `Result`.
fn looks_like_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("Result")),
        Type::Paren(paren) => looks_like_result(&paren.elem),
        Type::Group(group) => looks_like_result(&group.elem),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn analyze_err(item: proc_macro2::TokenStream) -> String {
        let item: ItemFn = syn::parse2(item).unwrap();
        match analyze(&item) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn finds_args_and_context_in_either_order() {
        let item: ItemFn = syn::parse2(quote! {
            async fn f(ctx: jobs::JobContext, args: Args) -> Result<(), E> { Ok(()) }
        })
        .unwrap();
        let executor = analyze(&item).unwrap();
        assert!(matches!(executor.params[0], Param::Context));
        let args = executor.args_type().unwrap();
        assert_eq!(quote!(#args).to_string(), "Args");
    }

    #[test]
    fn rejects_each_misdeclaration_with_a_hint() {
        assert!(analyze_err(quote!(
            fn f() -> Result<(), E> {}
        ))
        .contains("async fn"));
        assert!(analyze_err(quote!(
            async fn f<T>() -> Result<(), E> {}
        ))
        .contains("generic"));
        assert!(analyze_err(quote!(
            async fn f(&self) -> Result<(), E> {}
        ))
        .contains("free function"));
        assert!(analyze_err(quote!(
            async fn f(a: A, b: B) -> Result<(), E> {}
        ))
        .contains("too many"));
        assert!(analyze_err(quote!(
            async fn f(a: &str) -> Result<(), E> {}
        ))
        .contains("owned"));
        assert!(analyze_err(quote!(
            async fn f(a: JobContext, b: JobContext) -> Result<(), E> {}
        ))
        .contains("twice"));
        assert!(analyze_err(quote!(
            async fn f() {}
        ))
        .contains("must return"));
        assert!(analyze_err(quote!(
            async fn f() -> u32 {}
        ))
        .contains("must return"));
    }

    #[test]
    fn accepts_result_aliases() {
        let item: ItemFn = syn::parse2(quote!(
            async fn f() -> anyhow::Result<u32> {
                Ok(1)
            }
        ))
        .unwrap();
        assert!(analyze(&item).is_ok());
    }
}
