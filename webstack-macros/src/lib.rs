//! Procedural macros for [webstack](https://docs.rs/webstack). Use them
//! through the `webstack` crate: `#[webstack::instrument]`,
//! `#[webstack::main]` and `#[derive(webstack::Capture)]`.
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

use proc_macro::TokenStream;

mod attr;
mod awaits;
mod derive;
mod expand;
mod type_text;

/// Records a frame with typed argument values for each call of the function,
/// readable by webstack snapshots.
///
/// Works on free functions, methods (`self`, `&self`, `&mut self`,
/// `self: Box<Self>`), `async fn` (also in traits and trait impls, and in
/// `#[async_trait]` impls, whose boxed future gets the frame), functions
/// returning `impl Future` (each `return` too), generic functions and
/// functions with destructured parameters. Frames of methods, and of
/// associated functions whose signature names `Self`, are named
/// `Type::function`.
///
/// The first eight parameters are recorded (`MAX_ARGS`). A destructured
/// parameter is recorded by its pattern, without a value; a parameter under
/// `#[cfg]` is not recorded.
///
/// Arguments:
/// - `skip(a, b)`: do not record these parameters (`self` included);
/// - `skip_all`: record no parameter;
/// - `name = "..."`: the task name shown when the function's future is a task
///   root (default: the function name).
///
/// Misuse (an unknown or repeated argument, `skip` of a parameter that does
/// not exist, a `const fn`, an item that is not a function with a body) is a
/// compile error on the offending token; the function is still emitted
/// unchanged beside it.
///
/// An `async fn` becomes a `fn` returning `impl Future<Output = T>` whose
/// future captures the same lifetimes and holds every argument until it ends,
/// as the `async fn`'s future did; it records the arguments at the call. It
/// stays an `async fn` when it has a destructured parameter, `#[must_use]`
/// (so that it still applies to the awaited output), another attribute that
/// may be a macro (`#[tokio::test]`), `unsafe`, or an `impl Trait` or `!`
/// return type.
///
/// In an async body (an `async fn`, a `fn` returning `impl Future`, an
/// `#[async_trait]` method), every `expr.await` the parser can see, also in
/// `async` blocks and closures inside the body but not in nested items, is
/// rewritten so that an idle task's frame shows the line of the `.await` it
/// is suspended at: `at_line::<LINE, _, _>(expr, Meta).await`, which
/// converts `expr` with `IntoFuture` as `.await` does and records the line
/// only when the future is pending.
/// The `.await` keeps its span, so errors still point at the user's code.
/// For an `async` block awaited in the body, the line shown is that of the
/// body's `.await` of the block. A macro call's tokens are not rewritten
/// (the parser cannot see into them): a body with exactly one call of
/// `select!`, `select_biased!`, `join!`, `try_join!`, `pending!` or of any
/// macro whose tokens contain `await` shows that call's line when it is
/// suspended inside it; with several such calls, the function's definition
/// line (not marked as an await).
///
/// See the `webstack` crate docs for what it expands to.
#[proc_macro_attribute]
pub fn instrument(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrument(args.into(), item.into()).into()
}

/// Initialises webstack in `main` and makes `main`'s frame the root of the
/// main thread's stack.
///
/// Works on `fn main` and `async fn main`. With a runtime attribute, put
/// `#[webstack::main]` first (outermost):
///
/// ```ignore
/// #[webstack::main]
/// #[tokio::main]
/// async fn main() {}
/// ```
///
/// The other order (`#[tokio::main]` above `#[webstack::main]`) also works:
/// then `main` is instrumented as a sync function around the runtime.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::main(args.into(), item.into()).into()
}

/// Implements `webstack::Capture` for a struct or enum: records the variant
/// (`ConnState::Idle`) and the value of the field marked `#[capture]`
/// (`ConnState::Draining(3)`, `Order { id: 42, .. }`); a struct's only field
/// is recorded without the mark (`UserId(7)`).
///
/// Type parameters named by the marked field's type get a `Capture` bound.
/// A misplaced, repeated or argument-taking `#[capture]`, a struct with
/// several fields and none marked, and a union are compile errors on the
/// offending token. See `webstack::Capture` for the rendering and the cost.
#[proc_macro_derive(Capture, attributes(capture))]
pub fn derive_capture(input: TokenStream) -> TokenStream {
    derive::capture(input.into()).into()
}
