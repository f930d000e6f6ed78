//! Code generation for `#[job_executor]`.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, Block, Item, ItemFn, LitStr, Signature, Visibility};

use crate::options::{self, Options};
use crate::signature::{self, Executor, Param};

pub fn job_executor(attr: TokenStream, item: TokenStream) -> TokenStream {
    let (options, option_error) = options::parse_partial(attr);
    // The body is not parsed here: the item is given back to the compiler as it was, so
    // a mistake inside the body is reported once, by the compiler, where it is, and the
    // generated items below still exist for the rest of the crate.
    let parsed = match signature_only(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(_) => {
            let error = match syn::parse2::<Item>(item.clone()) {
                Ok(other) => not_a_fn(&other),
                Err(_) => syn::Error::new(
                    Span::call_site(),
                    "#[job_executor] applies to an `async fn`",
                ),
            };
            return with_errors(item, [Some(error), option_error]);
        }
    };
    let executor = match signature::analyze(&parsed) {
        Ok(executor) => executor,
        Err(error) => return with_errors(item, [Some(error), option_error]),
    };
    // An error in the options still generates the type, its impls and the registration
    // (with the options read before the error, or the defaults), so that code naming the
    // type reports nothing more than that error.
    let mut options = options.unwrap_or_else(|| {
        let ident = executor.ident();
        Options::new(LitStr::new(&ident.to_string(), ident.span()))
    });
    let mut key_error = None;
    if let (Some(field), None) = (&options.concurrency_key, executor.args_type()) {
        let message = format!(
            "`concurrency_key = \"{field}\"` names a field of the arguments, but this function takes none: add an arguments parameter, or key each submission with `SubmitOptions::concurrency_key`"
        );
        key_error = Some(syn::Error::new(field.span(), message));
        options.concurrency_key = None;
    }
    let errors = [option_error, key_error]
        .into_iter()
        .flatten()
        .map(|error| error.to_compile_error());
    let generated = generate(&options, &executor, &item);
    quote!(#generated #(#errors)*)
}

/// The function's attributes, visibility and signature, with its body left unparsed (an
/// empty block stands in for it): what the attribute needs to know.
fn signature_only(item: TokenStream) -> syn::Result<ItemFn> {
    let parse = |input: ParseStream| {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let body: Group = input.parse()?;
        if body.delimiter() != Delimiter::Brace || !input.is_empty() {
            return Err(input.error("expected the function's body"));
        }
        Ok(ItemFn {
            attrs,
            vis,
            sig,
            block: Box::new(Block {
                brace_token: Default::default(),
                stmts: Vec::new(),
            }),
        })
    };
    parse.parse2(item)
}

/// The user's item and these errors.
fn with_errors(item: TokenStream, errors: [Option<syn::Error>; 2]) -> TokenStream {
    let errors = errors
        .into_iter()
        .flatten()
        .map(|error| error.to_compile_error());
    quote!(#item #(#errors)*)
}

fn not_a_fn(item: &Item) -> syn::Error {
    let (span, what) = match item {
        Item::Struct(s) => (s.struct_token.span, "a struct"),
        Item::Enum(e) => (e.enum_token.span, "an enum"),
        Item::Impl(i) => (i.impl_token.span, "an impl block"),
        Item::Const(c) => (c.const_token.span, "a const"),
        Item::Static(s) => (s.static_token.span, "a static"),
        Item::Mod(m) => (m.mod_token.span, "a module"),
        Item::Trait(t) => (t.trait_token.span, "a trait"),
        Item::Type(t) => (t.type_token.span, "a type alias"),
        other => (other.span(), "this item"),
    };
    syn::Error::new(
        span,
        format!("#[job_executor] applies to an `async fn`, not to {what}"),
    )
}

/// The items next to the function: the user's `item` as it was written, the type, its
/// `JobType` and `JobExecutor` impls, and the registration.
fn generate(options: &Options, executor: &Executor<'_>, item: &TokenStream) -> TokenStream {
    let c = match &options.crate_path {
        Some(path) => path.to_token_stream(),
        None => quote!(::jobs),
    };
    let p = quote!(#c::__private);
    let vis = &executor.item.vis;
    let ident = executor.ident();
    let name = &options.job_type;

    let args_ty = match executor.args_type() {
        Some(ty) => ty.to_token_stream(),
        None => quote!(#p::NoArgs),
    };
    let args_span = executor.args_type().map_or(ident.span(), |ty| ty.span());
    let ret = executor.return_type;
    // Point errors about `T` and `E` at them when they are written out.
    let (output_span, error_span) = signature::result_arg_spans(ret);
    let output_ty = quote_spanned!(output_span=> <#ret as #p::ExecutorReturn>::Output);
    let error_ty = quote_spanned!(error_span=> <#ret as #p::ExecutorReturn>::Error);

    let args_var = format_ident!("__jobs_args");
    let ctx_var = format_ident!("__jobs_ctx");
    let call_args = executor.params.iter().map(|param| match param {
        Param::Args(_) => quote!(#args_var),
        Param::Context => quote!(#ctx_var),
    });
    // Every use of the argument type goes through `args`, so that a type that cannot be
    // deserialized is reported once, at the parameter.
    let read_args = quote_spanned!(args_span=> #p::args::<#args_ty>);
    let deserialize = executor.args_type().map(|_| {
        quote! {
            let #args_var = match #read_args(#ctx_var.payload()) {
                ::core::result::Result::Ok(args) => args,
                ::core::result::Result::Err(error) => return #p::invalid_payload(error),
            };
        }
    });
    // The generated type has the function's visibility, so its argument and output types
    // must be at least that visible; say so at the parameter rather than at the attribute.
    let args_assoc = quote_spanned!(args_span=> type Args = #args_ty;);
    let output_assoc = quote_spanned!(output_span=> type Output = #output_ty;);
    let validate = quote! {
        |payload: &#p::Value| #read_args(payload).map(::core::mem::drop)
    };
    let execution = quote_spanned!(ident.span()=> #p::execution::<_, #output_ty, #error_ty>);
    let line = quote_spanned!(ident.span()=> ::core::line!());
    let policy = options.has_policy().then(|| {
        let retries = options.retries.map(|n| quote!(.retries(#n)));
        let priority = options.priority.map(|n| quote!(.priority(#n)));
        let timeout = options
            .timeout_ms
            .map(|ms| quote!(.timeout(::core::time::Duration::from_millis(#ms))));
        // The cap is an hour, or the base itself when that is longer.
        let backoff = options.backoff_ms.map(|ms| {
            let cap = ms.max(3_600_000);
            quote!(.backoff(#p::Backoff::new(
                ::core::time::Duration::from_millis(#ms),
                ::core::time::Duration::from_millis(#cap),
            )))
        });
        let cron = options.cron.as_ref().map(|cron| quote!(.cron(#cron)));
        let zone = options
            .time_zone
            .as_ref()
            .map(|zone| quote!(.time_zone(#zone)));
        let queue = options.queue.as_ref().map(|queue| quote!(.queue(#queue)));
        let rate = options.rate.map(|(max, ms)| {
            quote!(.rate(
                #p::RateLimit::new(#max, ::core::time::Duration::from_millis(#ms))
                    .expect("checked by #[job_executor]")
            ))
        });
        let concurrency = options.concurrency.map(|n| quote!(.concurrency(#n)));
        let key_field = options.concurrency_key.as_ref().map(|field| {
            let name = field.to_string();
            quote!(.concurrency_key(#name))
        });
        quote! {
            fn policy(&self) -> #p::JobPolicy {
                #p::JobPolicy::new() #retries #timeout #priority #backoff #cron #zone #queue #rate
                    #concurrency #key_field
            }
        }
    });
    // The key is read from the typed arguments, so a field that is missing, or whose type
    // cannot be a key, fails to compile at the option's value.
    let key_fn = options.concurrency_key.as_ref().map(|field| {
        let read = quote_spanned!(field.span()=> #p::ConcurrencyKey::concurrency_key(&args.#field));
        quote! {
            fn concurrency_key(
                &self,
                payload: &#p::Value,
            ) -> ::core::result::Result<::core::option::Option<::std::string::String>, #p::PayloadError> {
                let args: #args_ty = #read_args(payload)?;
                ::core::result::Result::Ok(#read)
            }
        }
    });
    let doc = format!(
        "The `{}` job type, run by the function `{ident}`.\n\nGenerated by `#[job_executor]`: \
         pass it to `Jobs::submit` to submit with typed arguments.",
        name.value()
    );

    quote! {
        #item

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #vis struct #ident {}

        impl #p::JobType for #ident {
            const NAME: &'static str = #name;
            #args_assoc
            #output_assoc
        }

        impl #p::JobExecutor for #ident {
            fn job_type(&self) -> &str {
                #name
            }

            fn validate(&self, payload: &#p::Value) -> ::core::result::Result<(), #p::PayloadError> {
                #read_args(payload).map(::core::mem::drop)
            }

            #[allow(unused_variables)]
            fn execute(&self, #ctx_var: #p::JobContext) -> #p::BoxFuture<'static, ::core::result::Result<#p::Value, #p::ExecutionError>> {
                #deserialize
                #execution(#ident(#(#call_args),*))
            }

            #policy

            #key_fn

            fn args_schema(&self) -> ::core::option::Option<#p::Value> {
                #[allow(unused_imports)]
                use #p::{SchemaFromJsonSchema as _, SchemaUnknown as _};
                (&#p::ArgsSchema::<#args_ty>::new()).args_schema()
            }
        }

        #p::inventory::submit! {
            #p::ExecutorRegistration {
                job_type: #name,
                new_executor: || -> #p::Arc<dyn #p::JobExecutor> { #p::Arc::new(#ident {}) },
                validate: #validate,
                location: #p::SourceLocation {
                    file: ::core::file!(),
                    line: #line,
                    module_path: ::core::module_path!(),
                },
            }
        }
    }
}
