//! Await-point lines: rewrites every `.await` of an instrumented async body
//! so that an idle frame shows the line of the `.await` it is suspended at.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident};

/// Last path segments of macros that await inside their own expansion
/// (tokio's and futures' `select!`, `join!`, `try_join!`, futures'
/// `select_biased!` and `pending!`).
const AWAITING_MACROS: &[&str] = &["select", "select_biased", "join", "try_join", "pending"];

/// Rewrites each `expr.await` in `body` (in `async` blocks and closures
/// inside it too, not in nested items, which are functions of their own)
/// into `at_line::<LINE, _, _>(expr, Meta).await`, where `meta` names the
/// function's `StaticMeta` type and `at_line` converts `expr` with
/// `IntoFuture` as `.await` does. The `.await` keeps its span, and the call
/// takes the span of `expr`, so a type error still points at the user's
/// tokens.
///
/// Returns the fallback line expression for `StaticMeta::AWAIT_FALLBACK`:
/// the line of the one macro call in the body that may await where the
/// rewrite cannot see, or `None` when there are none or several.
pub(crate) fn rewrite(body: &mut syn::Block, meta: &Ident) -> Option<TokenStream> {
    let mut rewriter = Rewriter {
        meta,
        macros: Vec::new(),
    };
    rewriter.visit_block_mut(body);
    match rewriter.macros.as_slice() {
        [span] => Some(quote_spanned!(*span=> ::core::line!())),
        _ => None,
    }
}

struct Rewriter<'a> {
    meta: &'a Ident,
    /// Where each macro call that may await starts.
    macros: Vec<Span>,
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        visit_mut::visit_expr_mut(self, expr);
        let Expr::Await(awaited) = expr else {
            return;
        };
        let base = &awaited.base;
        let line = quote_spanned!(awaited.await_token.span=> ::core::line!());
        // The braces of the const argument keep the macro's span: on the
        // user's span, rustc would lint them as unnecessary in user code.
        let line = quote!({ #line });
        let meta = self.meta;
        let wrapped = quote_spanned! {base.span()=>
            ::webstack::__private::at_line::<#line, _, _>(#base, #meta)
        };
        *awaited.base = Expr::Verbatim(wrapped);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        let named = mac
            .path
            .segments
            .last()
            .is_some_and(|s| AWAITING_MACROS.iter().any(|name| s.ident == name));
        if named || mentions_await(mac.tokens.clone()) {
            let span = mac
                .path
                .segments
                .last()
                .map_or_else(|| mac.bang_token.span, |segment| segment.ident.span());
            self.macros.push(span);
        }
    }
}

fn mentions_await(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "await",
        TokenTree::Group(group) => mentions_await(group.stream()),
        _ => false,
    })
}
