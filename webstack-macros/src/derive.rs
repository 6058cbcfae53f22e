//! Code generation for `#[derive(webstack::Capture)]`.
//!
//! The impl matches `self` and, per struct or variant, calls the public
//! constructors a hand-written impl would: `Value::field(&SHAPE, <field's
//! capture>)` for the field marked `#[capture]` (or a struct's only field),
//! `Value::named(&SHAPE)` otherwise, with one `static SHAPE` per arm. No
//! unsafe code, nothing the trait's users could not write themselves.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, Member, Type};

/// What a misplaced `#[capture]` is told.
const ON_A_FIELD: &str = "`#[capture]` goes on a field: `Variant(#[capture] u32)`, \
                          `Variant { #[capture] id: u64 }` or `struct S { #[capture] id: u64 }`";

pub(crate) fn capture(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.into_compile_error(),
    };
    match gen_impl(&input) {
        Ok(tokens) => tokens,
        Err(error) => {
            // An impl that records nothing keeps uses of the trait from adding
            // errors of their own to the one that says what to fix.
            let mut tokens = fallback_impl(&input);
            tokens.extend(error.into_compile_error());
            tokens
        }
    }
}

/// The field of a struct or variant whose value is recorded.
struct Recorded<'a> {
    member: Member,
    ty: &'a Type,
    /// Its position and the number of fields, for the pattern shown.
    index: usize,
    fields: usize,
}

fn gen_impl(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    for attr in capture_attrs(&input.attrs) {
        errors.push(syn::Error::new_spanned(attr, ON_A_FIELD));
    }
    let ty_name = input.ident.unraw().to_string();
    let type_params: Vec<&Ident> = input.generics.type_params().map(|p| &p.ident).collect();
    let mut bounds: Vec<&Type> = Vec::new();
    let arms: Vec<TokenStream> = match &input.data {
        Data::Struct(data) => {
            let recorded = match recorded_field(&data.fields, &mut errors) {
                Some(recorded) => Some(recorded),
                None if data.fields.len() == 1 => only_field(&data.fields),
                // A mark with arguments is reported as such, not as missing.
                None if data.fields.len() > 1 && !data.fields.iter().any(is_marked) => {
                    errors.push(syn::Error::new_spanned(
                        &input.ident,
                        format!(
                            "`#[derive(Capture)]` on a struct with several fields records the \
                             one marked `#[capture]`; mark it: `struct {} {{ #[capture] id: u64, .. }}`",
                            input.ident
                        ),
                    ));
                    None
                }
                None => None,
            };
            let shape = quote!(::webstack::Shape::new(#ty_name));
            vec![arm(
                quote!(Self),
                shape,
                recorded.as_ref(),
                &type_params,
                &mut bounds,
            )]
        }
        Data::Enum(data) => {
            let mut arms = Vec::new();
            for variant in &data.variants {
                for attr in capture_attrs(&variant.attrs) {
                    errors.push(syn::Error::new_spanned(attr, ON_A_FIELD));
                }
                let recorded = recorded_field(&variant.fields, &mut errors);
                let name = &variant.ident;
                let variant_name = name.unraw().to_string();
                let shape = quote!(::webstack::Shape::new(#ty_name).variant(#variant_name));
                arms.push(arm(
                    quote!(Self::#name),
                    shape,
                    recorded.as_ref(),
                    &type_params,
                    &mut bounds,
                ));
            }
            arms
        }
        Data::Union(data) => {
            errors.push(syn::Error::new_spanned(
                data.union_token,
                "`#[derive(Capture)]` works on structs and enums, not unions; \
                 implement `webstack::Capture` by hand: `impl webstack::Capture for U { fn \
                 capture(&self) -> webstack::Value { .. } }`",
            ));
            Vec::new()
        }
    };
    errors.finish()?;

    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut predicates: Vec<TokenStream> = where_clause
        .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
        .unwrap_or_default();
    for ty in bounds {
        predicates.push(quote_spanned!(ty.span()=> #ty: ::webstack::Capture));
    }
    let body = if arms.is_empty() {
        // An enum without variants has no value to record.
        quote!(match *self {})
    } else {
        quote!(match self { #(#arms)* })
    };
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::webstack::Capture for #ident #ty_generics
        where #(#predicates,)*
        {
            #[inline]
            fn capture(&self) -> ::webstack::Value {
                #body
            }
        }
    })
}

/// One match arm: the pattern of the struct or variant, binding the recorded
/// field, and the value built from it.
fn arm<'a>(
    path: TokenStream,
    shape: TokenStream,
    recorded: Option<&Recorded<'a>>,
    type_params: &[&Ident],
    bounds: &mut Vec<&'a Type>,
) -> TokenStream {
    let Some(recorded) = recorded else {
        return quote! {
            #path { .. } => {
                static __WEBSTACK_SHAPE: ::webstack::Shape = #shape;
                ::webstack::Value::named(&__WEBSTACK_SHAPE)
            }
        };
    };
    let Recorded {
        member,
        ty,
        index,
        fields,
    } = recorded;
    let shape = match member {
        Member::Named(name) => {
            let name = name.unraw().to_string();
            quote!(#shape.named_field(#name, #fields))
        }
        Member::Unnamed(_) => quote!(#shape.tuple_field(#index, #fields)),
    };
    if mentions(ty, type_params) {
        bounds.push(ty);
    }
    let field = Ident::new("__webstack_field", Span::mixed_site());
    // Spanned on the field's type: a type without `Capture` is reported there.
    let capture = quote_spanned!(ty.span()=> <#ty as ::webstack::Capture>::capture(#field));
    quote! {
        #path { #member: #field, .. } => {
            static __WEBSTACK_SHAPE: ::webstack::Shape = #shape;
            ::webstack::Value::field(&__WEBSTACK_SHAPE, #capture)
        }
    }
}

/// The field marked `#[capture]`, checking that at most one is and that the
/// mark has no arguments.
fn recorded_field<'a>(fields: &'a Fields, errors: &mut Errors) -> Option<Recorded<'a>> {
    let mut found: Option<(Recorded<'a>, &Attribute)> = None;
    for (index, field) in fields.iter().enumerate() {
        for attr in capture_attrs(&field.attrs) {
            if attr.meta.require_path_only().is_err() {
                errors.push(syn::Error::new_spanned(
                    &attr.meta,
                    "`#[capture]` takes no arguments; write `#[capture]` alone above the field",
                ));
                continue;
            }
            if let Some((_, first)) = &found {
                let mut error = syn::Error::new_spanned(
                    attr,
                    "only one field of a struct or variant can be marked `#[capture]`; \
                     remove it from all fields but one",
                );
                error.combine(syn::Error::new_spanned(first, "first marked here"));
                errors.push(error);
                continue;
            }
            let member = match &field.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(syn::Index {
                    index: index as u32,
                    span: field.ty.span(),
                }),
            };
            let recorded = Recorded {
                member,
                ty: &field.ty,
                index,
                fields: fields.len(),
            };
            found = Some((recorded, attr));
        }
    }
    found.map(|(recorded, _)| recorded)
}

/// A struct's single field, recorded without a mark.
fn only_field(fields: &Fields) -> Option<Recorded<'_>> {
    let field = fields.iter().next()?;
    Some(Recorded {
        member: match &field.ident {
            Some(ident) => Member::Named(ident.clone()),
            None => Member::Unnamed(syn::Index {
                index: 0,
                span: field.ty.span(),
            }),
        },
        ty: &field.ty,
        index: 0,
        fields: 1,
    })
}

fn is_marked(field: &syn::Field) -> bool {
    capture_attrs(&field.attrs).next().is_some()
}

fn capture_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| attr.path().is_ident("capture"))
}

/// Whether `ty` names one of the type parameters (then it gets a `Capture`
/// bound; a concrete type does not, so that a recursive type like
/// `enum List { Cons(#[capture] Box<List>) }` needs no bound on itself).
fn mentions(ty: &Type, type_params: &[&Ident]) -> bool {
    fn walk(tokens: TokenStream, type_params: &[&Ident]) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => type_params.iter().any(|p| **p == ident),
            TokenTree::Group(group) => walk(group.stream(), type_params),
            _ => false,
        })
    }
    !type_params.is_empty() && walk(quote!(#ty), type_params)
}

/// The impl emitted beside errors: records the type as opaque.
fn fallback_impl(input: &DeriveInput) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::webstack::Capture for #ident #ty_generics #where_clause {
            fn capture(&self) -> ::webstack::Value {
                ::webstack::Value::opaque()
            }
        }
    }
}

/// Every error of one derive, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
