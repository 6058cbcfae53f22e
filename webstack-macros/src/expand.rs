//! Code generation for `#[webstack::instrument]` and `#[webstack::main]`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Signature, Type};

use crate::attr::{InstrumentArgs, MainArgs};

/// Most parameters recorded per frame (the runtime's `MAX_ARGS`).
const MAX_ARGS: usize = 8;

pub(crate) fn instrument(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = match parse_function(item.clone(), "#[webstack::instrument]") {
        Ok(function) => function,
        Err(error) => return token_stream_with_error(item, error),
    };
    let args = match syn::parse2::<InstrumentArgs>(args) {
        Ok(args) => args,
        Err(error) => return token_stream_with_error(item, error),
    };
    match gen_function(function, &args, false) {
        Ok(tokens) => tokens,
        Err(error) => token_stream_with_error(item, error),
    }
}

pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = match parse_function(item.clone(), "#[webstack::main]") {
        Ok(function) => function,
        Err(error) => return token_stream_with_error(item, error),
    };
    if let Err(error) = syn::parse2::<MainArgs>(args) {
        return token_stream_with_error(item, error);
    }
    let args = InstrumentArgs {
        skip_all: true,
        ..InstrumentArgs::default()
    };
    match gen_function(function, &args, true) {
        Ok(tokens) => tokens,
        Err(error) => token_stream_with_error(item, error),
    }
}

/// The user's item unchanged, followed by the error, so that the function
/// still exists for IDEs and for later errors.
fn token_stream_with_error(mut item: TokenStream, error: syn::Error) -> TokenStream {
    item.extend(error.into_compile_error());
    item
}

fn parse_function(item: TokenStream, attr: &str) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item.clone()).map_err(|_| {
        let message = format!(
            "`{attr}` can only be applied to a function with a body \
             (`fn`, `async fn`, or a method)"
        );
        match syn::parse2::<syn::Item>(item.clone()) {
            Ok(other) => syn::Error::new(item_head_span(&other), message),
            Err(_) => syn::Error::new_spanned(item, message),
        }
    })
}

/// A span on the keyword that says what the item is (`struct`, `impl`...).
fn item_head_span(item: &syn::Item) -> Span {
    match item {
        syn::Item::Struct(s) => s.struct_token.span,
        syn::Item::Enum(e) => e.enum_token.span,
        syn::Item::Impl(i) => i.impl_token.span,
        syn::Item::Trait(t) => t.trait_token.span,
        syn::Item::Mod(m) => m.mod_token.span,
        syn::Item::Const(c) => c.const_token.span,
        syn::Item::Static(s) => s.static_token.span,
        syn::Item::Type(t) => t.type_token.span,
        syn::Item::Use(u) => u.use_token.span,
        syn::Item::Fn(f) => f.sig.fn_token.span,
        other => other.span(),
    }
}

/// One parameter as it will be recorded.
struct Param {
    /// Shown name: the identifier, `self`, or the pattern's text.
    name: String,
    ty: String,
    /// The expression recording the value.
    capture: TokenStream,
}

fn gen_function(
    function: ItemFn,
    args: &InstrumentArgs,
    is_main: bool,
) -> syn::Result<TokenStream> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "`#[webstack::instrument]` cannot be applied to a `const fn`: \
             remove `const`, or remove the attribute",
        ));
    }
    let params = params(&sig)?;
    for skip in &args.skips {
        if !params.iter().any(|(ident, _)| ident.as_ref() == Some(skip)) {
            let names: Vec<String> = params
                .iter()
                .filter_map(|(ident, _)| ident.as_ref().map(|i| format!("`{i}`")))
                .collect();
            let valid = if names.is_empty() {
                "this function has no named parameters".to_owned()
            } else {
                format!("expected one of: {}", names.join(", "))
            };
            return Err(syn::Error::new_spanned(
                skip,
                format!(
                    "`skip({skip})` names no parameter of `{}`; {valid}",
                    sig.ident
                ),
            ));
        }
    }
    let recorded: Vec<Param> = if args.skip_all {
        Vec::new()
    } else {
        params
            .into_iter()
            .filter(|(ident, _)| !ident.as_ref().is_some_and(|i| args.skips.contains(i)))
            .map(|(_, param)| param)
            .take(MAX_ARGS)
            .collect()
    };

    let fn_name = sig.ident.to_string();
    let task_name = args
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&fn_name, sig.ident.span()));
    let line = sig.fn_token.span.start().line as u32;
    let arg_metas = recorded.iter().map(|p| {
        let (name, ty) = (&p.name, &p.ty);
        quote!(::webstack::__private::ArgMeta { name: #name, ty: #ty })
    });
    let captures: Vec<&TokenStream> = recorded.iter().map(|p| &p.capture).collect();
    let owner = if sig.receiver().is_some() {
        quote!(::webstack::__private::owner::<Self>())
    } else {
        quote!(0usize)
    };
    let meta = Ident::new("__WEBSTACK_META", Span::mixed_site());
    let frame = Ident::new("__webstack_frame", Span::mixed_site());
    let values = Ident::new("__webstack_args", Span::mixed_site());
    let allow = allow_attrs();
    let init = if is_main {
        quote!(::webstack::__private::init_main();)
    } else {
        TokenStream::new()
    };
    let meta_static = quote! {
        #allow
        static #meta: ::webstack::__private::FrameMeta = ::webstack::__private::FrameMeta {
            name: #fn_name,
            function: ::core::concat!(::core::module_path!(), "::", #fn_name),
            task_name: #task_name,
            file: ::core::file!(),
            line: #line,
            args: &[#(#arg_metas),*],
        };
    };
    let capture_values = quote! {
        #allow
        let #values = {
            #[allow(unused_imports)]
            use ::webstack::__private::{ViaAddr as _, ViaCapture as _, ViaRef as _};
            [#(#captures),*]
        };
    };

    let body = if sig.asyncness.is_some() {
        let ret_binding = match &sig.output {
            ReturnType::Type(_, ty) if !contains_impl_trait(ty) => {
                let ret = Ident::new("__webstack_ret", Span::mixed_site());
                quote_spanned!(block.span()=> {
                    #allow
                    let #ret: #ty = #block;
                    #ret
                })
            }
            ReturnType::Default => {
                let ret = Ident::new("__webstack_ret", Span::mixed_site());
                quote_spanned!(block.span()=> {
                    #allow
                    let #ret: () = #block;
                    #ret
                })
            }
            ReturnType::Type(..) => block.to_token_stream(),
        };
        quote! {
            #init
            #meta_static
            #capture_values
            ::webstack::__private::Instrumented::new(&#meta, #owner, #values, async move #ret_binding).await
        }
    } else if returns_impl_future(&sig) {
        quote! {
            #init
            #meta_static
            #capture_values
            ::webstack::__private::Instrumented::new(&#meta, #owner, #values, #block)
        }
    } else {
        quote! {
            #init
            #meta_static
            #capture_values
            let #frame = ::webstack::__private::enter(&#meta, #owner, #values);
            #block
        }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}

/// The `#[allow]` list for generated items and statements.
fn allow_attrs() -> TokenStream {
    quote!(#[allow(
        unused,
        clippy::all,
        clippy::pedantic,
        non_upper_case_globals
    )])
}

/// Every parameter with its identifier (when it is a plain binding) and how
/// it is recorded.
fn params(sig: &Signature) -> syn::Result<Vec<(Option<Ident>, Param)>> {
    let mut out = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                let self_token = &receiver.self_token;
                let ty = if receiver.colon_token.is_some() {
                    format!("self: {}", type_text(&receiver.ty))
                } else {
                    let mut text = String::new();
                    if let Some((_, lifetime)) = &receiver.reference {
                        text.push('&');
                        if let Some(lifetime) = lifetime {
                            text.push_str(&format!("{lifetime} "));
                        }
                        if receiver.mutability.is_some() {
                            text.push_str("mut ");
                        }
                    }
                    text.push_str("Self");
                    text
                };
                out.push((
                    Some(Ident::new("self", self_token.span)),
                    Param {
                        name: "self".to_owned(),
                        ty,
                        capture: quote_spanned!(Span::mixed_site()=>
                            (&&&::webstack::__private::Probe(&#self_token)).__webstack_value()),
                    },
                ));
            }
            FnArg::Typed(typed) => {
                let ty = type_text(&typed.ty);
                match &*typed.pat {
                    Pat::Ident(pat) if pat.subpat.is_none() => {
                        let ident = &pat.ident;
                        out.push((
                            Some(ident.clone()),
                            Param {
                                name: ident.to_string(),
                                ty,
                                capture: quote!(
                                    (&&&::webstack::__private::Probe(&#ident)).__webstack_value()
                                ),
                            },
                        ));
                    }
                    other => {
                        out.push((
                            None,
                            Param {
                                name: tokens_text(other.to_token_stream()),
                                ty,
                                capture: quote!(::webstack::__private::Value::opaque()),
                            },
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn returns_impl_future(sig: &Signature) -> bool {
    let ReturnType::Type(_, ty) = &sig.output else {
        return false;
    };
    let Type::ImplTrait(impl_trait) = &**ty else {
        return false;
    };
    impl_trait.bounds.iter().any(|bound| match bound {
        syn::TypeParamBound::Trait(t) => {
            t.path.segments.last().is_some_and(|s| s.ident == "Future")
        }
        _ => false,
    })
}

fn contains_impl_trait(ty: &Type) -> bool {
    ty.to_token_stream()
        .into_iter()
        .any(|t| matches!(&t, proc_macro2::TokenTree::Ident(i) if i == "impl"))
        || tokens_text(ty.to_token_stream()).contains("impl ")
}

fn type_text(ty: &Type) -> String {
    tokens_text(ty.to_token_stream())
}

/// Token text with the spacing a person would write: `&Mutex<Queue>`, not
/// `& Mutex < Queue >`.
fn tokens_text(tokens: TokenStream) -> String {
    let raw = tokens.to_string();
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = out.chars().last().unwrap_or(' ');
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let glue_after = matches!(prev, '&' | '<' | '(' | '[' | ':' | '*' | '\'');
            let glue_before = matches!(next, '<' | '>' | ',' | ')' | ']' | ';' | ':' | '(');
            let keep_arrow = prev == '>' && out.ends_with("->");
            let keep_before_arrow = next == '-' || (next == '>' && prev == '-');
            let after_keyword = ["mut", "dyn", "impl", "const"]
                .iter()
                .any(|kw| out.ends_with(kw) && next != '(');
            let glue_paren = next == '(' && (matches!(prev, ',' | '=') || out.ends_with("->"));
            if (glue_after || glue_before)
                && !keep_arrow
                && !keep_before_arrow
                && !after_keyword
                && !glue_paren
            {
                continue;
            }
            if prev == '*' && out.ends_with("* const") {
                out.push(c);
                continue;
            }
        }
        out.push(c);
    }
    out.replace("* const", "*const").replace("* mut", "*mut")
}

#[cfg(test)]
mod tests {
    use super::tokens_text;
    use quote::quote;

    #[test]
    fn types_read_as_written() {
        assert_eq!(tokens_text(quote!(&Mutex<Queue>)), "&Mutex<Queue>");
        assert_eq!(tokens_text(quote!(&'a mut Vec<u8>)), "&'a mut Vec<u8>");
        assert_eq!(
            tokens_text(quote!(HashMap<K, Vec<V>>)),
            "HashMap<K, Vec<V>>"
        );
        assert_eq!(tokens_text(quote!([u8; 4])), "[u8; 4]");
        assert_eq!(tokens_text(quote!(impl Fn(u8) -> u8)), "impl Fn(u8) -> u8");
        assert_eq!(
            tokens_text(quote!(std::sync::Arc<dyn Send>)),
            "std::sync::Arc<dyn Send>"
        );
        assert_eq!(tokens_text(quote!((a, b))), "(a, b)");
        assert_eq!(tokens_text(quote!(Option<&str>)), "Option<&str>");
        assert_eq!(tokens_text(quote!(Receiver<()>)), "Receiver<()>");
        assert_eq!(
            tokens_text(quote!(fn(u8, (u8, u8)) -> (u8, u8))),
            "fn(u8, (u8, u8)) -> (u8, u8)"
        );
        assert_eq!(tokens_text(quote!(*const u8)), "*const u8");
    }
}
