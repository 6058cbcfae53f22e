//! Parsing of `#[webstack::instrument(...)]` arguments.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Token};

mod kw {
    syn::custom_keyword!(skip);
    syn::custom_keyword!(skip_all);
    syn::custom_keyword!(name);
}

const EXPECTED: &str = "expected one of: `skip(a, b)`, `skip_all`, `name = \"...\"`";

/// The parsed arguments of `#[webstack::instrument]`.
#[derive(Default)]
pub(crate) struct InstrumentArgs {
    /// Parameters named in `skip(...)`, with their spans.
    pub(crate) skips: Vec<Ident>,
    pub(crate) skip_all: bool,
    pub(crate) name: Option<LitStr>,
    /// For `#[webstack::main]`: what it sets up after `init_main`.
    pub(crate) main_setup: TokenStream,
}

impl Parse for InstrumentArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = InstrumentArgs::default();
        let mut seen_skip: Option<kw::skip> = None;
        let mut seen_skip_all: Option<kw::skip_all> = None;
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::skip_all) {
                let token: kw::skip_all = input.parse()?;
                if seen_skip_all.is_some() {
                    return Err(syn::Error::new_spanned(
                        token,
                        "duplicate `skip_all` argument; give it once",
                    ));
                }
                if seen_skip.is_some() {
                    return Err(syn::Error::new_spanned(
                        token,
                        "`skip_all` cannot be combined with `skip(...)`; use one of them",
                    ));
                }
                seen_skip_all = Some(token);
                args.skip_all = true;
            } else if lookahead.peek(kw::skip) {
                let token: kw::skip = input.parse()?;
                if seen_skip.is_some() {
                    return Err(syn::Error::new_spanned(
                        token,
                        "duplicate `skip` argument; list all parameters in one `skip(a, b)`",
                    ));
                }
                if seen_skip_all.is_some() {
                    return Err(syn::Error::new_spanned(
                        token,
                        "`skip(...)` cannot be combined with `skip_all`; use one of them",
                    ));
                }
                if !input.peek(syn::token::Paren) {
                    return Err(syn::Error::new_spanned(
                        token,
                        "expected a parenthesised list of parameters: `skip(a, b)`",
                    ));
                }
                let content;
                syn::parenthesized!(content in input);
                let names: Punctuated<Ident, Token![,]> =
                    content.parse_terminated(parse_param_name, Token![,])?;
                for name in names {
                    if args.skips.contains(&name) {
                        return Err(syn::Error::new_spanned(
                            &name,
                            format!("`{name}` is already skipped; name each parameter once"),
                        ));
                    }
                    args.skips.push(name);
                }
                seen_skip = Some(token);
            } else if lookahead.peek(kw::name) {
                let token: kw::name = input.parse()?;
                if args.name.is_some() {
                    return Err(syn::Error::new_spanned(
                        token,
                        "duplicate `name` argument; give one `name = \"...\"`",
                    ));
                }
                if !input.peek(Token![=]) {
                    return Err(syn::Error::new_spanned(
                        token,
                        "expected `name = \"...\"` with a string literal",
                    ));
                }
                input.parse::<Token![=]>()?;
                let value: LitStr = input.parse().map_err(|e| {
                    syn::Error::new(e.span(), "expected a string literal: `name = \"...\"`")
                })?;
                args.name = Some(value);
            } else if input.peek(Ident::peek_any) {
                let unknown = Ident::parse_any(input)?;
                return Err(syn::Error::new_spanned(
                    &unknown,
                    format!("unknown argument `{unknown}`; {EXPECTED}"),
                ));
            } else {
                return Err(syn::Error::new(input.span(), EXPECTED));
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

fn parse_param_name(input: ParseStream<'_>) -> syn::Result<Ident> {
    if input.peek(Token![self]) {
        let token: Token![self] = input.parse()?;
        return Ok(Ident::new("self", token.span));
    }
    Ident::parse_any(input)
}

/// The parsed arguments of `#[webstack::main]`: what to set up besides
/// the main thread's frame.
#[derive(Default)]
pub(crate) struct MainArgs {
    /// `panic_hook`: print the dump after a panic's message.
    pub(crate) panic_hook: bool,
    /// `dump_on_signal`: print the dump on `SIGQUIT`.
    pub(crate) dump_on_signal: bool,
    /// `tokio_hooks`: run the `async fn main` on a tokio runtime with
    /// webstack's task hooks.
    pub(crate) tokio_hooks: Option<Ident>,
}

const MAIN_EXPECTED: &str = "expected any of `panic_hook`, `dump_on_signal`, `tokio_hooks`, \
     e.g. `#[webstack::main(panic_hook, dump_on_signal)]` (runtime options go on the runtime's \
     attribute, e.g. `#[tokio::main(...)]`)";

impl Parse for MainArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = MainArgs::default();
        while !input.is_empty() {
            if !input.peek(Ident::peek_any) {
                return Err(syn::Error::new(input.span(), MAIN_EXPECTED));
            }
            let ident = Ident::parse_any(input)?;
            let mut hooks = args.tokio_hooks.is_some();
            let seen = match ident.to_string().as_str() {
                "panic_hook" => &mut args.panic_hook,
                "dump_on_signal" => &mut args.dump_on_signal,
                "tokio_hooks" => &mut hooks,
                _ => {
                    let rest: TokenStream = input.parse()?;
                    return Err(syn::Error::new_spanned(
                        quote::quote!(#ident #rest),
                        format!(
                            "unknown argument `{ident}` of `#[webstack::main]`; {MAIN_EXPECTED}"
                        ),
                    ));
                }
            };
            if *seen {
                return Err(syn::Error::new_spanned(
                    &ident,
                    format!("duplicate `{ident}` argument; give it once"),
                ));
            }
            *seen = true;
            if ident == "tokio_hooks" {
                args.tokio_hooks = Some(ident);
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}
