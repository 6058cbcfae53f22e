//! The text shown for a parameter's type or pattern on the page: tokens
//! spaced as a person writes them, without the lifetimes `#[async_trait]`
//! adds.

use proc_macro2::{Delimiter, Group, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Type;

/// A parameter's type as shown. `async_trait`: the signature was rewritten by
/// `#[async_trait]`, whose lifetimes (`'life0`, `'async_trait`) are left out.
pub(crate) fn type_text(ty: &Type, async_trait: bool) -> String {
    let tokens = ty.to_token_stream();
    if async_trait {
        tokens_text(without_async_trait_lifetimes(tokens))
    } else {
        tokens_text(tokens)
    }
}

/// Token text with the spacing a person would write: `&Mutex<Queue>`, not
/// `& Mutex < Queue >`. Works on tokens rather than on `to_string()`'s output,
/// so an identifier that merely ends like a keyword (`Immut`) is not mistaken
/// for one.
pub(crate) fn tokens_text(tokens: TokenStream) -> String {
    let mut out = String::new();
    write_tokens(&mut out, tokens);
    out
}

/// The previous token, as far as spacing cares.
#[derive(Clone, Copy)]
enum Prev {
    /// Start of the text or of a group.
    Start,
    /// An identifier, literal, closed group or closing `>`. `keyword` marks
    /// words that keep a space before `(`: `mut (u8, u8)`, `dyn (Trait)`.
    Word { keyword: bool },
    /// Punctuation. `joint` when it starts a longer operator (`->`, `::`,
    /// `'a`); `binary` when it follows a word (`N * 2`, not `*const`).
    Punct { ch: char, joint: bool, binary: bool },
    /// The last character of `->` or `::`.
    OperatorEnd { ch: char },
}

/// The next token, as far as spacing cares.
#[derive(Clone, Copy)]
enum Next {
    Word,
    Punct(char),
    Group(Delimiter),
}

fn write_tokens(out: &mut String, tokens: TokenStream) {
    let mut prev = Prev::Start;
    for token in tokens {
        let next = match &token {
            TokenTree::Punct(p) => Next::Punct(p.as_char()),
            TokenTree::Group(g) => Next::Group(g.delimiter()),
            TokenTree::Ident(_) | TokenTree::Literal(_) => Next::Word,
        };
        if space_between(prev, next) {
            out.push(' ');
        }
        prev = match token {
            TokenTree::Punct(p) => {
                let ch = p.as_char();
                out.push(ch);
                match (prev, ch) {
                    (
                        Prev::Punct {
                            ch: '-',
                            joint: true,
                            ..
                        },
                        '>',
                    )
                    | (
                        Prev::Punct {
                            ch: ':',
                            joint: true,
                            ..
                        },
                        ':',
                    ) => Prev::OperatorEnd { ch },
                    // Closes generic arguments: spaced like a word after it.
                    (_, '>') => Prev::Word { keyword: false },
                    _ => Prev::Punct {
                        ch,
                        joint: p.spacing() == Spacing::Joint,
                        binary: matches!(prev, Prev::Word { .. }),
                    },
                }
            }
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace if g.stream().is_empty() => ("{", "}"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                write_tokens(out, g.stream());
                out.push_str(close);
                Prev::Word { keyword: false }
            }
            TokenTree::Ident(ident) => {
                let text = ident.to_string();
                out.push_str(&text);
                let keyword = matches!(
                    text.as_str(),
                    "mut" | "dyn" | "impl" | "const" | "ref" | "as" | "in" | "where"
                );
                Prev::Word { keyword }
            }
            TokenTree::Literal(literal) => {
                out.push_str(&literal.to_string());
                Prev::Word { keyword: true }
            }
        };
    }
}

fn space_between(prev: Prev, next: Next) -> bool {
    if let Next::Punct(',' | ';' | ':' | '>') = next {
        return false;
    }
    match prev {
        Prev::Start => false,
        Prev::Word { keyword } => match next {
            Next::Word => true,
            Next::Group(Delimiter::Parenthesis) => keyword,
            Next::Group(_) => true,
            Next::Punct(ch) => matches!(
                ch,
                '=' | '+' | '-' | '*' | '&' | '/' | '%' | '^' | '@' | '|' | '\''
            ),
        },
        Prev::Punct { ch, joint, binary } => match ch {
            ',' | ';' | '=' | '+' | '@' | '|' => true,
            ':' => !joint,
            '-' | '*' | '&' | '/' | '%' | '^' => binary && !joint,
            _ => false,
        },
        Prev::OperatorEnd { ch } => ch == '>',
    }
}

/// `tokens` without the lifetimes `#[async_trait]` adds (`'life0`, `'life1`,
/// ..., `'async_trait`).
fn without_async_trait_lifetimes(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Punct(p) if p.as_char() == '\'' => {
                if let Some(TokenTree::Ident(name)) = tokens.peek() {
                    let name = name.to_string();
                    let added = name == "async_trait"
                        || name.strip_prefix("life").is_some_and(|n| {
                            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                        });
                    if added {
                        tokens.next();
                        // `Cow<'life1, str>`, `dyn Trait + 'async_trait`.
                        if matches!(tokens.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ',')
                        {
                            tokens.next();
                        } else if matches!(out.last(), Some(TokenTree::Punct(p)) if p.as_char() == '+')
                        {
                            out.pop();
                        }
                        continue;
                    }
                }
                out.push(TokenTree::Punct(p));
            }
            TokenTree::Group(g) => {
                let mut inner =
                    Group::new(g.delimiter(), without_async_trait_lifetimes(g.stream()));
                inner.set_span(g.span());
                out.push(TokenTree::Group(inner));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::{tokens_text, type_text, without_async_trait_lifetimes};
    use quote::quote;

    #[test]
    fn types_read_as_written() {
        let cases = [
            (quote!(&Mutex<Queue>), "&Mutex<Queue>"),
            (quote!(&'a mut Vec<u8>), "&'a mut Vec<u8>"),
            (quote!(HashMap<K, Vec<V>>), "HashMap<K, Vec<V>>"),
            (quote!(Vec<Vec<u8>>), "Vec<Vec<u8>>"),
            (quote!([u8; 4]), "[u8; 4]"),
            (quote!([u8; N * 2]), "[u8; N * 2]"),
            (quote!(impl Fn(u8) -> u8), "impl Fn(u8) -> u8"),
            (quote!(std::sync::Arc<dyn Send>), "std::sync::Arc<dyn Send>"),
            (quote!((a, b)), "(a, b)"),
            (quote!((u8,)), "(u8,)"),
            (quote!(Option<&str>), "Option<&str>"),
            (quote!(&&str), "&&str"),
            (quote!(Receiver<()>), "Receiver<()>"),
            (
                quote!(fn(u8, (u8, u8)) -> (u8, u8)),
                "fn(u8, (u8, u8)) -> (u8, u8)",
            ),
            (quote!(*const u8), "*const u8"),
            (quote!(*mut [u8]), "*mut [u8]"),
            (quote!(&mut [u8]), "&mut [u8]"),
            (quote!(&mut (u8, u8)), "&mut (u8, u8)"),
            (quote!(Immut<&mut [u8]>), "Immut<&mut [u8]>"),
            (quote!(Pconst<u8>), "Pconst<u8>"),
            (
                quote!(impl Iterator<Item = u8> + Send),
                "impl Iterator<Item = u8> + Send",
            ),
            (
                quote!(Box<dyn for<'b> Fn(&'b str) -> &'b str + Send + 'static>),
                "Box<dyn for<'b> Fn(&'b str) -> &'b str + Send + 'static>",
            ),
            (quote!(<T as Trait>::Assoc), "<T as Trait>::Assoc"),
            (quote!(Vec<u8>::IntoIter), "Vec<u8>::IntoIter"),
            (quote!(extern "C" fn(u8)), "extern \"C\" fn(u8)"),
            (quote!(unsafe fn() -> !), "unsafe fn() -> !"),
            (quote!(Cow<'a, str>), "Cow<'a, str>"),
            (quote!(Box<T: ?Sized>), "Box<T: ?Sized>"),
        ];
        for (tokens, text) in cases {
            assert_eq!(tokens_text(tokens), text);
        }
    }

    #[test]
    fn async_trait_lifetimes_are_left_out() {
        let cases = [
            (quote!(&'life0 Self), "&Self"),
            (quote!(&'life1 mut Vec<u8>), "&mut Vec<u8>"),
            (quote!(Cow<'life2, str>), "Cow<str>"),
            (quote!(Box<dyn Send + 'async_trait>), "Box<dyn Send>"),
            (quote!(&'a Ref<'static, T>), "&'a Ref<'static, T>"),
            (quote!(&'lifetime u8), "&'lifetime u8"),
        ];
        for (tokens, text) in cases {
            assert_eq!(tokens_text(without_async_trait_lifetimes(tokens)), text);
        }
    }

    #[test]
    fn async_trait_lifetimes_only_left_out_of_async_trait_signatures() {
        let ty: syn::Type = syn::parse_quote!(&'life0 Cow<'life1, str>);
        assert_eq!(type_text(&ty, true), "&Cow<str>");
        assert_eq!(type_text(&ty, false), "&'life0 Cow<'life1, str>");
    }

    #[test]
    fn patterns_read_as_written() {
        let cases = [
            (quote!((a, b)), "(a, b)"),
            (quote!(Point { x, y }), "Point { x, y }"),
            (quote!(Point { x: a, .. }), "Point { x: a, .. }"),
            (quote!([first, ..]), "[first, ..]"),
            (quote!([first, rest @ ..]), "[first, rest @ ..]"),
            (quote!(Wrapper(inner)), "Wrapper(inner)"),
            (quote!((mut a, ref b)), "(mut a, ref b)"),
            (quote!(&(a, b)), "&(a, b)"),
            (quote!(Empty {}), "Empty {}"),
            (quote!(_), "_"),
        ];
        for (tokens, text) in cases {
            assert_eq!(tokens_text(tokens), text);
        }
    }
}
