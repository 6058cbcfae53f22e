//! [`Shape`], where a recorded value sits in a user's type (its type,
//! variant and field), and [`Collection`], the kind of collection a length
//! describes: the `'static` descriptions a [`Value`](super::Value) refers
//! to.

/// Where a recorded value sits in a user's type: the type's name, the
/// variant's, and which field the value is. What `#[derive(Capture)]`
/// records beside a field's value ([`Value::field`](super::Value::field)),
/// or alone for a variant without a recorded field
/// ([`Value::named`](super::Value::named)).
///
/// A value shows as a Rust pattern that matches it: `ConnState::Idle`,
/// `ConnState::Draining(3)`, `Pair(_, 3, ..)`, `Order { id: 42 }`,
/// `Order { id: 42, .. }`. Values compare their shapes by address: the
/// derive makes one `static` per variant.
///
/// ```
/// use webstack::{Capture, Shape, Value};
///
/// struct Job { id: u64, retries: u8 }
///
/// impl Capture for Job {
///     fn capture(&self) -> Value {
///         static SHAPE: Shape = Shape::new("Job").named_field("id", 2);
///         Value::field(&SHAPE, self.id.capture())
///     }
/// }
///
/// assert_eq!(Job { id: 4, retries: 0 }.capture().to_string(), "Job { id: 4, .. }");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    ty: &'static str,
    variant: Option<&'static str>,
    field: ShapeField,
}

/// Which field of its type a [`Shape`]'s value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ShapeField {
    /// No field: the type or variant alone.
    None,
    /// The field `name`, one of `fields` named fields.
    Named { name: &'static str, fields: usize },
    /// The tuple field `index`, one of `fields`.
    Tuple { index: usize, fields: usize },
}

impl Shape {
    /// A struct or enum named `ty` (without its module path or generic
    /// arguments), with no variant and no field yet.
    pub const fn new(ty: &'static str) -> Self {
        Shape {
            ty,
            variant: None,
            field: ShapeField::None,
        }
    }

    /// The variant `variant` of the enum.
    pub const fn variant(self, variant: &'static str) -> Self {
        Shape {
            variant: Some(variant),
            ..self
        }
    }

    /// The value is the field `name`, one of `fields` named fields (more than
    /// one shows as `{ name: value, .. }`).
    pub const fn named_field(self, name: &'static str, fields: usize) -> Self {
        Shape {
            field: ShapeField::Named { name, fields },
            ..self
        }
    }

    /// The value is the tuple field `index`, one of `fields` (the others show
    /// as `_` before it and `..` after it).
    pub const fn tuple_field(self, index: usize, fields: usize) -> Self {
        Shape {
            field: ShapeField::Tuple { index, fields },
            ..self
        }
    }

    /// The type's name.
    pub const fn type_name(&self) -> &'static str {
        self.ty
    }

    /// The variant's name, for an enum.
    pub const fn variant_name(&self) -> Option<&'static str> {
        self.variant
    }

    /// The field's name, for a named field.
    pub const fn field_name(&self) -> Option<&'static str> {
        match self.field {
            ShapeField::Named { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The field's position among the struct's or variant's fields, for a
    /// tuple field.
    pub const fn field_index(&self) -> Option<usize> {
        match self.field {
            ShapeField::Tuple { index, .. } => Some(index),
            _ => None,
        }
    }

    /// Which field the value is, with the number of fields beside it.
    pub(crate) const fn field(&self) -> ShapeField {
        self.field
    }
}

/// The kind of collection a [`Value::len`](super::Value::len) describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Collection {
    /// A slice `[T]`.
    Slice,
    /// An array `[T; N]`.
    Array,
    /// A `Vec<T>`.
    Vec,
    /// A `VecDeque<T>`.
    VecDeque,
    /// A `HashMap<K, V>`.
    HashMap,
    /// A `BTreeMap<K, V>`.
    BTreeMap,
    /// A `HashSet<T>`.
    HashSet,
    /// A `BTreeSet<T>`.
    BTreeSet,
    /// Any other collection.
    Other,
}

impl Collection {
    const ALL: [Collection; 9] = [
        Collection::Slice,
        Collection::Array,
        Collection::Vec,
        Collection::VecDeque,
        Collection::HashMap,
        Collection::BTreeMap,
        Collection::HashSet,
        Collection::BTreeSet,
        Collection::Other,
    ];

    /// The code a length value's header keeps for this kind.
    pub(super) const fn code(self) -> u64 {
        match self {
            Collection::Slice => 0,
            Collection::Array => 1,
            Collection::Vec => 2,
            Collection::VecDeque => 3,
            Collection::HashMap => 4,
            Collection::BTreeMap => 5,
            Collection::HashSet => 6,
            Collection::BTreeSet => 7,
            Collection::Other => 8,
        }
    }

    /// The kind whose code is `code`; [`Collection::Other`] for an unknown
    /// one.
    pub(super) fn from_code(code: u64) -> Self {
        Self::ALL
            .get(code as usize)
            .copied()
            .unwrap_or(Collection::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_codes_match_their_decoding() {
        for (index, kind) in Collection::ALL.into_iter().enumerate() {
            assert_eq!(kind.code(), index as u64, "{kind:?}");
            assert_eq!(Collection::from_code(kind.code()), kind);
        }
    }
}
