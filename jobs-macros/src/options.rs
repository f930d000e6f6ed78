//! Parsing of `#[job_executor("Type", option = value, ...)]`.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, Lit, LitStr, Path, Token};

/// The options the attribute accepts, as listed in error messages.
const KNOWN_OPTIONS: &str = "`crate`";

/// What the attribute's arguments say.
pub struct Options {
    /// The job type name.
    pub job_type: LitStr,
    /// The path of the `jobs` crate (`::jobs` unless `crate = ...` is given).
    pub crate_path: Option<Path>,
}

pub fn parse(attr: TokenStream) -> syn::Result<Options> {
    if attr.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "missing job type: write `#[job_executor(\"TypeName\")]`",
        ));
    }
    (|input: ParseStream| parse_options(input)).parse2(attr)
}

fn parse_options(input: ParseStream) -> syn::Result<Options> {
    let job_type = parse_job_type(input)?;
    let mut crate_path: Option<Path> = None;
    while !input.is_empty() {
        input.parse::<Token![,]>()?;
        if input.is_empty() {
            break;
        }
        let key = Ident::parse_any(input).map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "expected an option such as `crate = jobs`; known options: {KNOWN_OPTIONS}"
                ),
            )
        })?;
        match key.to_string().as_str() {
            "crate" => {
                if crate_path.is_some() {
                    return Err(syn::Error::new(
                        key.span(),
                        "option `crate` is given twice: keep one",
                    ));
                }
                input.parse::<Token![=]>().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "expected `=` after `crate`: write `crate = path::to::jobs`",
                    )
                })?;
                crate_path = Some(parse_path_value(input)?);
            }
            other => {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown option `{other}`; expected one of: {KNOWN_OPTIONS}"),
                ));
            }
        }
    }
    Ok(Options {
        job_type,
        crate_path,
    })
}

fn parse_job_type(input: ParseStream) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        let value = lit.value();
        if value.is_empty() {
            return Err(syn::Error::new(
                lit.span(),
                "the job type must not be empty: write a name such as `#[job_executor(\"SendEmail\")]`",
            ));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(syn::Error::new(
                lit.span(),
                "the job type must not contain whitespace or control characters",
            ));
        }
        return Ok(lit);
    }
    if input.peek(Ident::peek_any) && input.peek2(Token![=]) {
        return Err(input.error(
            "missing job type: the first argument is the job type as a string literal, e.g. `#[job_executor(\"SendEmail\", crate = ...)]`",
        ));
    }
    let span = if input.peek(Lit) || input.peek(Ident::peek_any) {
        input.span()
    } else {
        Span::call_site()
    };
    Err(syn::Error::new(
        span,
        "the job type must be a string literal: write `#[job_executor(\"SendEmail\")]`",
    ))
}

fn parse_path_value(input: ParseStream) -> syn::Result<Path> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        return lit.parse_with(Path::parse_mod_style).map_err(|_| {
            syn::Error::new(
                lit.span(),
                "`crate` must name a path, such as `crate = \"my_app::jobs\"`",
            )
        });
    }
    Path::parse_mod_style(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "`crate` must name a path, such as `crate = my_app::jobs`",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn err(attr: TokenStream) -> String {
        match parse(attr) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_a_type_name_and_crate_path() {
        let options = parse(quote!("Export", crate = my::jobs)).unwrap();
        assert_eq!(options.job_type.value(), "Export");
        let path = options.crate_path.unwrap();
        assert_eq!(quote!(#path).to_string(), "my :: jobs");
        let options = parse(quote!("Export", crate = "::other")).unwrap();
        assert!(options.crate_path.unwrap().leading_colon.is_some());
        assert!(parse(quote!("Export",)).is_ok());
    }

    #[test]
    fn rejects_malformed_arguments_with_a_hint() {
        assert!(err(quote!()).contains("missing job type"));
        assert!(err(quote!("")).contains("must not be empty"));
        assert!(err(quote!("a b")).contains("whitespace"));
        assert!(err(quote!(Export)).contains("string literal"));
        assert!(err(quote!(42)).contains("string literal"));
        assert!(err(quote!(crate = jobs)).contains("missing job type"));
        assert!(err(quote!("X", retries = 3)).contains("unknown option `retries`"));
        assert!(err(quote!("X", crate = a, crate = b)).contains("given twice"));
    }
}
