//! Code generation for `#[webstack::instrument]` and `#[webstack::main]`.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Signature, Type};

use crate::attr::{InstrumentArgs, MainArgs};
use crate::awaits;
use crate::type_text::{tokens_text, type_text};

/// Most parameters recorded per frame (the runtime's `MAX_ARGS`).
const MAX_ARGS: usize = 8;

/// Which attribute is expanding, for messages and for what `main` adds.
#[derive(Clone, Copy, PartialEq)]
enum Attr {
    Instrument,
    Main,
}

impl Attr {
    fn name(self) -> &'static str {
        match self {
            Attr::Instrument => "#[webstack::instrument]",
            Attr::Main => "#[webstack::main]",
        }
    }
}

pub(crate) fn instrument(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = parse_function(item.clone(), Attr::Instrument);
    let args = syn::parse2::<InstrumentArgs>(args);
    let (function, args) = match (function, args) {
        (Ok(function), Ok(args)) => (function, args),
        (function, args) => return token_stream_with_errors(item, [function.err(), args.err()]),
    };
    gen_function(function, &args, Attr::Instrument)
        .unwrap_or_else(|error| token_stream_with_errors(item, [Some(error)]))
}

pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = parse_function(item.clone(), Attr::Main);
    let args = syn::parse2::<MainArgs>(args);
    let (function, main_args) = match (function, args) {
        (Ok(function), Ok(args)) => (function, args),
        (function, args) => return token_stream_with_errors(item, [function.err(), args.err()]),
    };
    if let Some(token) = &main_args.tokio_hooks {
        return tokio_main(function, &main_args, token)
            .unwrap_or_else(|error| token_stream_with_errors(item, [Some(error)]));
    }
    let mut setup = TokenStream::new();
    if main_args.panic_hook {
        setup.extend(quote!(::webstack::panic_hook();));
    }
    if main_args.dump_on_signal {
        setup.extend(quote!(::webstack::__private::dump_on_sigquit();));
    }
    let args = InstrumentArgs {
        skip_all: true,
        main_setup: setup,
        ..InstrumentArgs::default()
    };
    gen_function(function, &args, Attr::Main)
        .unwrap_or_else(|error| token_stream_with_errors(item, [Some(error)]))
}

/// `#[webstack::main(tokio_hooks)] async fn main() -> R { body }` becomes a
/// sync `main` that runs the instrumented `async fn main` on a tokio
/// runtime with webstack's task hooks (`__private::tokio_main`), as
/// `#[tokio::main]` would run it on one without.
fn tokio_main(function: ItemFn, args: &MainArgs, token: &Ident) -> syn::Result<TokenStream> {
    if function.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            token,
            "`tokio_hooks` runs an `async fn main` on a tokio runtime it builds; \
             make `main` an `async fn`",
        ));
    }
    if let Some(runtime) = function.attrs.iter().find(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "main" || s.ident == "test")
    }) {
        return Err(syn::Error::new_spanned(
            runtime,
            "`#[webstack::main(tokio_hooks)]` builds the tokio runtime itself; remove this \
             runtime attribute",
        ));
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let mut outer = sig.clone();
    outer.asyncness = None;
    let ident = &sig.ident;
    let mut inner_args = Vec::new();
    if args.panic_hook {
        inner_args.push(quote!(panic_hook));
    }
    if args.dump_on_signal {
        inner_args.push(quote!(dump_on_signal));
    }
    Ok(quote! {
        #(#attrs)*
        #vis #outer {
            #[::webstack::main(#(#inner_args),*)]
            #sig #block
            ::webstack::__private::tokio_main(#ident())
        }
    })
}

/// The user's item unchanged, followed by the errors, so that the function
/// still exists for IDEs and for later errors.
fn token_stream_with_errors(
    mut item: TokenStream,
    errors: impl IntoIterator<Item = Option<syn::Error>>,
) -> TokenStream {
    for error in errors.into_iter().flatten() {
        item.extend(error.into_compile_error());
    }
    item
}

fn parse_function(item: TokenStream, attr: Attr) -> syn::Result<ItemFn> {
    let attr = attr.name();
    syn::parse2::<ItemFn>(item.clone()).map_err(|_| {
        // A method declared in a trait, or a function in an `extern` block:
        // right kind of item, but nothing to instrument.
        if let Ok(declaration) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
            if let Some(semi) = declaration.semi_token {
                return syn::Error::new_spanned(
                    semi,
                    format!(
                        "`{attr}` needs a function body, found `;`; put it on the \
                         function's definition (in each `impl` of a trait, or on a \
                         trait method with a default body)"
                    ),
                );
            }
        }
        let expected =
            format!("`{attr}` can only be applied to a function: `fn`, `async fn` or a method");
        match syn::parse2::<syn::Item>(item.clone()) {
            Ok(other) => {
                let (span, what) = item_head(&other);
                let hint = if matches!(other, syn::Item::Impl(_) | syn::Item::Trait(_)) {
                    "; put it on each method instead"
                } else {
                    ""
                };
                syn::Error::new(span, format!("{expected}, not {what}{hint}"))
            }
            Err(_) => syn::Error::new_spanned(item, expected),
        }
    })
}

/// The keyword that says what an item is (`struct`, `impl`...), and a name
/// for that kind of item.
fn item_head(item: &syn::Item) -> (Span, &'static str) {
    match item {
        syn::Item::Struct(s) => (s.struct_token.span, "a struct"),
        syn::Item::Enum(e) => (e.enum_token.span, "an enum"),
        syn::Item::Union(u) => (u.union_token.span, "a union"),
        syn::Item::Impl(i) => (i.impl_token.span, "an `impl` block"),
        syn::Item::Trait(t) => (t.trait_token.span, "a trait"),
        syn::Item::Mod(m) => (m.mod_token.span, "a module"),
        syn::Item::Const(c) => (c.const_token.span, "a constant"),
        syn::Item::Static(s) => (s.static_token.span, "a static"),
        syn::Item::Type(t) => (t.type_token.span, "a type alias"),
        syn::Item::Use(u) => (u.use_token.span, "a `use` declaration"),
        syn::Item::ExternCrate(e) => (e.extern_token.span, "an `extern crate`"),
        syn::Item::ForeignMod(f) => (f.abi.extern_token.span, "an `extern` block"),
        syn::Item::Macro(m) => (m.mac.path.span(), "a macro invocation"),
        other => (other.span(), "this item"),
    }
}

/// One parameter of the instrumented function.
struct Param {
    /// The binding, when the pattern is a plain identifier (or `self`); only
    /// these can be named in `skip(...)`.
    ident: Option<Ident>,
    /// Shown name: the identifier, `self`, or the pattern's text.
    name: String,
    ty: String,
    /// The expression recording the value.
    capture: TokenStream,
    /// `false` for a parameter under `#[cfg]`: it may not exist, so it is
    /// never recorded.
    recordable: bool,
}

fn gen_function(function: ItemFn, args: &InstrumentArgs, attr: Attr) -> syn::Result<TokenStream> {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        mut block,
    } = function;
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            format!(
                "`{}` cannot be applied to a `const fn`; remove `const`, or remove the attribute",
                attr.name()
            ),
        ));
    }
    let mut shape = Shape::of(&attrs, &sig, &block, attr);
    let params = params(&sig, matches!(shape, Shape::BoxedAsync(_)));
    check_skips(&sig, &params, args)?;
    let meta_type = Ident::new("__WebstackMeta", Span::mixed_site());
    let await_fallback = match &mut shape {
        Shape::BoxedAsync(boxed) => awaits::rewrite(&mut boxed.future.block, &meta_type),
        Shape::DesugaredAsync | Shape::AsyncFn | Shape::ImplFuture => {
            awaits::rewrite(&mut block, &meta_type)
        }
        Shape::Sync => None,
    };
    let frame = Frame::new(&sig, args, attr, params, &meta_type, await_fallback);
    let body = match shape {
        Shape::BoxedAsync(boxed) => boxed_async_body(&frame, *boxed),
        Shape::DesugaredAsync => desugared_async_body(&frame, &mut sig, &block),
        Shape::AsyncFn => async_fn_body(&frame, &sig, &block),
        Shape::ImplFuture => impl_future_body(&frame, &attrs, &block),
        Shape::Sync => sync_body(&frame, &block),
    };
    // The braces keep the user's span: rustc places the fn item where its
    // tokens are, and does not report `dead_code` on an item whose span ends
    // in macro-generated tokens.
    let mut braces = Group::new(Delimiter::Brace, body);
    braces.set_span(block.brace_token.span.join());
    Ok(quote! {
        #(#attrs)*
        #vis #sig #braces
    })
}

/// Where the frame lives, decided by the body's shape.
enum Shape {
    /// A method of an `#[async_trait]` impl, already rewritten to `fn .. ->
    /// Pin<Box<dyn Future>>` returning `Box::pin(async move { body })`: the
    /// frame goes into the boxed future, as for an `async fn`.
    BoxedAsync(Box<BoxedAsync>),
    /// An `async fn` that [`desugars`] to a `fn` returning `impl Future`.
    DesugaredAsync,
    /// Any other `async fn` (`main` included): it stays one and awaits the
    /// instrumented body.
    AsyncFn,
    /// A `fn` returning `impl Future`: every returned future is instrumented.
    ImplFuture,
    /// Any other function: the frame is entered for the call.
    Sync,
}

impl Shape {
    fn of(attrs: &[syn::Attribute], sig: &Signature, block: &syn::Block, attr: Attr) -> Shape {
        let instrument = attr == Attr::Instrument;
        if let Some(boxed) = instrument.then(|| boxed_async_block(sig, block)).flatten() {
            Shape::BoxedAsync(Box::new(boxed))
        } else if sig.asyncness.is_some() && instrument && desugars(attrs, sig) {
            Shape::DesugaredAsync
        } else if sig.asyncness.is_some() {
            Shape::AsyncFn
        } else if returns_impl_future(sig) {
            Shape::ImplFuture
        } else {
            Shape::Sync
        }
    }
}

/// What every shape of body shares: the statements that set the frame up,
/// and the arguments of the call that creates it.
struct Frame {
    /// `init_main` for `main`, the frame's static metadata, the recorded
    /// values.
    prelude: TokenStream,
    /// The metadata, the owner and the values, as the runtime's frame
    /// constructors take them.
    args: TokenStream,
}

impl Frame {
    fn new(
        sig: &Signature,
        args: &InstrumentArgs,
        attr: Attr,
        params: Vec<Param>,
        meta_type: &Ident,
        await_fallback: Option<TokenStream>,
    ) -> Frame {
        let recorded: Vec<Param> = if args.skip_all {
            Vec::new()
        } else {
            params
                .into_iter()
                .filter(|p| p.recordable)
                .filter(|p| !p.ident.as_ref().is_some_and(|i| args.skips.contains(i)))
                .take(MAX_ARGS)
                .collect()
        };
        let meta = Ident::new("__webstack_meta", Span::mixed_site());
        let values = Ident::new("__webstack_args", Span::mixed_site());
        let init = if attr == Attr::Main {
            let setup = &args.main_setup;
            quote!(::webstack::__private::init_main(); #setup)
        } else {
            TokenStream::new()
        };
        let meta_static = meta_static(&meta, meta_type, sig, args, &recorded, await_fallback);
        let capture_values = capture_values(&values, &recorded);
        // Frames of methods are named `Type::method`. Without a receiver, a
        // signature that names `Self` is also inside an `impl` or a trait.
        let owner = if sig.receiver().is_some() || mentions_self(sig) {
            quote!(::webstack::__private::owner::<Self>())
        } else {
            quote!(::webstack::__private::NoOwner)
        };
        Frame {
            prelude: quote!(#init #meta_static #capture_values),
            args: quote!(#meta, #owner, #values),
        }
    }

    /// `future` instrumented as the body of an `async fn`.
    fn in_async_fn(&self, future: TokenStream) -> TokenStream {
        let args = &self.args;
        quote!(::webstack::__private::Instrumented::in_async_fn(#args, #future))
    }
}

/// The zero-sized type `meta_type` naming the frame's static metadata, and
/// `let meta = ..;`, a value of that type. An async frame's future holds the
/// type, not the address. The type is an item of the function's body, so
/// that the rewritten `.await`s of the body (see [`awaits`]) can name it
/// wherever they are without borrowing a local; the static lives inside its
/// `meta` method, where no name of the user's can clash with it.
fn meta_static(
    meta: &Ident,
    meta_type: &Ident,
    sig: &Signature,
    args: &InstrumentArgs,
    recorded: &[Param],
    await_fallback: Option<TokenStream>,
) -> TokenStream {
    let fn_name = sig.ident.to_string();
    let task_name = args
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&fn_name, sig.ident.span()));
    // `line!()` spanned on the user's `fn` keyword gives that keyword's line,
    // on every compiler (`Span::start` needs Rust 1.88 in a proc macro).
    let line = quote_spanned!(sig.fn_token.span=> ::core::line!());
    let arg_metas = recorded.iter().map(|p| {
        let (name, ty) = (&p.name, &p.ty);
        quote!(::webstack::__private::ArgMeta { name: #name, ty: #ty })
    });
    let fallback = await_fallback.unwrap_or_else(|| quote!(0));
    quote! {
        struct #meta_type;
        impl ::webstack::__private::StaticMeta for #meta_type {
            const AWAIT_FALLBACK: u32 = #fallback;
            #[inline(always)]
            fn meta(&self) -> &'static ::webstack::__private::FrameMeta {
                static __WEBSTACK_META: ::webstack::__private::FrameMeta = ::webstack::__private::FrameMeta {
                    name: #fn_name,
                    function: ::core::concat!(::core::module_path!(), "::", #fn_name),
                    task_name: #task_name,
                    file: ::core::file!(),
                    line: #line,
                    args: &[#(#arg_metas),*],
                };
                &__WEBSTACK_META
            }
        }
        let #meta = #meta_type;
    }
}

/// `let values = ..;`, the recorded parameters' values (`()` for none).
fn capture_values(values: &Ident, recorded: &[Param]) -> TokenStream {
    if recorded.is_empty() {
        return quote!(let #values = (););
    }
    let captures = recorded.iter().map(|p| &p.capture);
    quote! {
        let #values = {
            use ::webstack::__private::{
                ViaCapture as _, ViaNarrow as _, ViaPointee as _, ViaRef as _, ViaValue as _,
            };
            (#(#captures,)*)
        };
    }
}

fn boxed_async_body(frame: &Frame, boxed: BoxedAsync) -> TokenStream {
    let BoxedAsync {
        before,
        box_pin,
        future,
    } = boxed;
    let prelude = &frame.prelude;
    let instrumented = frame.in_async_fn(future.to_token_stream());
    quote! {
        #prelude
        #(#before)*
        #box_pin(#instrumented)
    }
}

/// `async fn f(x: T) -> R` becomes `fn f(x: T) -> impl Future<Output = R>`
/// returning the instrumented future directly. Left `async`, the call would
/// be a generator around `Instrumented` around the body's generator: each
/// argument is copied twice more, and every poll goes through one more state
/// dispatch.
fn desugared_async_body(frame: &Frame, sig: &mut Signature, block: &syn::Block) -> TokenStream {
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    let rebinds = rebind_params(sig);
    let ret = Ident::new("__webstack_ret", Span::mixed_site());
    let inner = quote_spanned!(block.span()=> {
        #(#rebinds)*
        let #ret: #output = #block;
        #ret
    });
    sig.asyncness = None;
    // The `impl` token carries this crate's edition (2024): the opaque type
    // captures every lifetime in scope, elided ones included, as the `async
    // fn` did.
    sig.output = syn::parse_quote!(-> impl ::core::future::Future<Output = #output>);
    let prelude = &frame.prelude;
    let instrumented = frame.in_async_fn(quote!(async move #inner));
    quote! {
        #prelude
        #instrumented
    }
}

fn async_fn_body(frame: &Frame, sig: &Signature, block: &syn::Block) -> TokenStream {
    // Binding the block's value to the declared type keeps inference (`?`,
    // `.into()`, `collect()`) and puts type errors on the user's tail
    // expression, as in the unexpanded `async fn`.
    let declared = match &sig.output {
        ReturnType::Default => Some(quote!(())),
        ReturnType::Type(_, ty) if binds_as_let(ty) => Some(ty.to_token_stream()),
        ReturnType::Type(..) => None,
    };
    let inner = match declared {
        Some(ty) => {
            let ret = Ident::new("__webstack_ret", Span::mixed_site());
            quote_spanned!(block.span()=> {
                let #ret: #ty = #block;
                #ret
            })
        }
        None => block.to_token_stream(),
    };
    let prelude = &frame.prelude;
    let instrumented = frame.in_async_fn(quote!(async move #inner));
    quote! {
        #prelude
        #instrumented.await
    }
}

fn impl_future_body(frame: &Frame, attrs: &[syn::Attribute], block: &syn::Block) -> TokenStream {
    // A `return` in the body must return the instrumented future too: the
    // body runs as a closure called once, so `return` leaves the closure and
    // every path reaches `Instrumented::new`. Not for a `#[track_caller]`
    // function without `return` (a closure cannot forward the caller's
    // location).
    let track_caller = attrs.iter().any(|a| a.path().is_ident("track_caller"));
    let inner = if track_caller && !has_ident(block.to_token_stream(), "return") {
        block.to_token_stream()
    } else {
        quote_spanned!(block.span()=> ::webstack::__private::run_body(move || #block))
    };
    let Frame { prelude, args } = frame;
    quote! {
        #prelude
        ::webstack::__private::Instrumented::new(#args, #inner)
    }
}

fn sync_body(frame: &Frame, block: &syn::Block) -> TokenStream {
    let Frame { prelude, args } = frame;
    let guard = Ident::new("__webstack_frame", Span::mixed_site());
    quote! {
        #prelude
        let #guard = ::webstack::__private::enter(#args);
        #block
    }
}

/// Attributes that may stay on an `async fn` rewritten to return `impl
/// Future`. Any other attribute may be a macro that wants to see `async`
/// (`#[tokio::test]`, `#[tokio::main]`), so it keeps the `async fn` form.
/// So does `#[must_use]`: on an `async fn` it applies to the awaited output
/// (`f().await;` unused is linted), on a `fn` returning `impl Future` only to
/// the future.
const INERT_ATTRS: &[&str] = &[
    "doc",
    "allow",
    "warn",
    "deny",
    "forbid",
    "expect",
    "inline",
    "cold",
    "deprecated",
];

/// Whether an instrumented `async fn` can become a `fn` returning `impl
/// Future` with the same meaning: inert attributes only; every parameter a
/// receiver or a plain binding (a pattern such as `_` or `(a, b)` would drop
/// or split the argument at the call rather than when the future ends); no
/// `unsafe` (whose body rules differ between editions); and a return type
/// that can be named as `Output` (no `impl Trait`, not `!`).
fn desugars(attrs: &[syn::Attribute], sig: &Signature) -> bool {
    let inert = |attr: &syn::Attribute| INERT_ATTRS.iter().any(|name| attr.path().is_ident(name));
    let plain_param = |input: &FnArg| match input {
        FnArg::Receiver(_) => true,
        FnArg::Typed(typed) => {
            typed.attrs.is_empty()
                && matches!(&*typed.pat, Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none())
        }
    };
    let output_nameable = match &sig.output {
        ReturnType::Default => true,
        ReturnType::Type(_, ty) => binds_as_let(ty),
    };
    attrs.iter().all(inert)
        && sig.inputs.iter().all(plain_param)
        && sig.unsafety.is_none()
        && sig.variadic.is_none()
        && output_nameable
}

/// The statements that move each parameter into the async block, as an
/// `async fn` does: every argument lives, and is dropped, with the future,
/// even one the body never names. Removes `mut` from the signature's
/// bindings, which the block's bindings take over.
fn rebind_params(sig: &mut Signature) -> Vec<TokenStream> {
    sig.inputs
        .iter_mut()
        .map(|input| match input {
            FnArg::Receiver(receiver) => {
                let self_token = &receiver.self_token;
                quote!(let _ = &#self_token;)
            }
            FnArg::Typed(typed) => {
                let Pat::Ident(pat) = &mut *typed.pat else {
                    unreachable!("`desugars` admits only plain bindings")
                };
                let ident = &pat.ident;
                let mutability = pat.mutability.take();
                quote!(#[allow(unused_variables, clippy::redundant_locals)] let #mutability #ident = #ident;)
            }
        })
        .collect()
}

/// Every name in `skip(...)` must be a parameter that can be skipped.
fn check_skips(sig: &Signature, params: &[Param], args: &InstrumentArgs) -> syn::Result<()> {
    for skip in &args.skips {
        if params.iter().any(|p| p.ident.as_ref() == Some(skip)) {
            continue;
        }
        let names: Vec<String> = params
            .iter()
            .filter_map(|p| p.ident.as_ref().map(|i| format!("`{i}`")))
            .collect();
        let valid = if names.is_empty() {
            "it has no parameter that can be named here".to_owned()
        } else {
            format!("expected one of: {}", names.join(", "))
        };
        let destructured = if params.iter().any(|p| p.ident.is_none()) {
            " (a destructured parameter is recorded by its pattern, and only `skip_all` \
             leaves it out)"
        } else {
            ""
        };
        return Err(syn::Error::new_spanned(
            skip,
            format!(
                "`skip({skip})` names no parameter of `{}`; {valid}{destructured}",
                sig.ident
            ),
        ));
    }
    Ok(())
}

/// Every parameter and how it is recorded. `async_trait`: the signature was
/// rewritten by `#[async_trait]`, whose lifetimes (`'life0`, `'async_trait`)
/// are left out of the shown types.
fn params(sig: &Signature, async_trait: bool) -> Vec<Param> {
    sig.inputs
        .iter()
        .map(|input| match input {
            FnArg::Receiver(receiver) => {
                let self_token = &receiver.self_token;
                Param {
                    ident: Some(Ident::new("self", self_token.span)),
                    name: "self".to_owned(),
                    // `&self` comes with the type `&Self`, `self: Box<Self>` with
                    // `Box<Self>`.
                    ty: type_text(&receiver.ty, async_trait),
                    capture: quote!(
                        (&&&&&::webstack::__private::Probe(&#self_token)).__webstack_value()
                    ),
                    recordable: true,
                }
            }
            FnArg::Typed(typed) => {
                let ty = type_text(&typed.ty, async_trait);
                let recordable = !typed
                    .attrs
                    .iter()
                    .any(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"));
                match &*typed.pat {
                    Pat::Ident(pat) if pat.subpat.is_none() => {
                        let ident = &pat.ident;
                        // A reference to a reference is recorded as the
                        // innermost one: the outer ones are often the
                        // caller's temporaries, whose addresses say nothing
                        // of the value and are reused by the next call.
                        let derefs =
                            (0..reference_depth(&typed.ty).saturating_sub(1)).map(|_| quote!(*));
                        Param {
                            ident: Some(ident.clone()),
                            name: ident.unraw().to_string(),
                            ty,
                            capture: quote!(
                                (&&&&&::webstack::__private::Probe(&#(#derefs)*#ident))
                                    .__webstack_value()
                            ),
                            recordable,
                        }
                    }
                    other => Param {
                        ident: None,
                        name: tokens_text(other.to_token_stream()),
                        ty,
                        capture: quote!(::webstack::__private::Value::opaque()),
                        recordable,
                    },
                }
            }
        })
        .collect()
}

/// How many references (`&` or `&mut`) a type is, as written: 2 for
/// `&&T` and `&mut &T`, 0 for `T`. An alias of a reference counts as 0.
fn reference_depth(ty: &Type) -> usize {
    match ty {
        Type::Reference(reference) => 1 + reference_depth(&reference.elem),
        Type::Paren(paren) => reference_depth(&paren.elem),
        Type::Group(group) => reference_depth(&group.elem),
        _ => 0,
    }
}

/// The parts of a body that `#[async_trait]` produced: the statements before
/// the last, the `Box::pin` path, and the `async move` block it boxes.
struct BoxedAsync {
    before: Vec<syn::Stmt>,
    box_pin: syn::Expr,
    future: syn::ExprAsync,
}

/// Recognises a method that `#[async_trait]` rewrote (as tracing's
/// `#[instrument]` does): not `async`, returning a type that names `Future`
/// (`Pin<Box<dyn Future<Output = R> + Send + 'async_trait>>`, not `impl
/// Future`, whose every return path is wrapped instead), whose last
/// statement is `Box::pin(async move { .. })`.
fn boxed_async_block(sig: &Signature, block: &syn::Block) -> Option<BoxedAsync> {
    if sig.asyncness.is_some() || returns_impl_future(sig) {
        return None;
    }
    let ReturnType::Type(_, ty) = &sig.output else {
        return None;
    };
    if !has_ident(ty.to_token_stream(), "Future") {
        return None;
    }
    let (last, before) = block.stmts.split_last()?;
    let syn::Stmt::Expr(syn::Expr::Call(call), None) = last else {
        return None;
    };
    let syn::Expr::Path(path) = &*call.func else {
        return None;
    };
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if !segments.ends_with(&["Box".to_owned(), "pin".to_owned()]) || call.args.len() != 1 {
        return None;
    }
    let syn::Expr::Async(future) = &call.args[0] else {
        return None;
    };
    future.capture?;
    Some(BoxedAsync {
        before: before.to_vec(),
        box_pin: (*call.func).clone(),
        future: future.clone(),
    })
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

/// Whether `let x: Ty = ...;` is valid for the return type: not with
/// `impl Trait` inside, and not for `!` (unstable in that position).
fn binds_as_let(ty: &Type) -> bool {
    !matches!(ty, Type::Never(_)) && !has_ident(ty.to_token_stream(), "impl")
}

fn mentions_self(sig: &Signature) -> bool {
    let Signature {
        generics,
        inputs,
        output,
        ..
    } = sig;
    has_ident(quote!(#generics #inputs #output), "Self")
        || has_ident(generics.where_clause.to_token_stream(), "Self")
}

fn has_ident(tokens: TokenStream, wanted: &str) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == wanted,
        TokenTree::Group(group) => has_ident(group.stream(), wanted),
        _ => false,
    })
}
