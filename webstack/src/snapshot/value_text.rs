//! Recorded argument values as text: the [`Display`](fmt::Display) and
//! [`Debug`](fmt::Debug) forms of [`Value`] and of [`Shape`], and
//! [`Labelled`], a value with its address shown as a `#n` label.
//!
//! Read-side work: a value is turned into text when a snapshot is rendered,
//! on the thread that asked for it, from what [`Value::decode`] reads out of
//! its words. A value shows as Rust source would write it; a field of a
//! user's type as a pattern that matches it (`Order { id: 42, .. }`).

use std::fmt;

use crate::record::value::{Inner, Shape, ShapeField, Value, Wrapper};

/// `ConnState::Draining`: the type, and the variant if there is one.
fn fmt_path(shape: &Shape, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(shape.type_name())?;
    if let Some(variant) = shape.variant_name() {
        write!(f, "::{variant}")?;
    }
    Ok(())
}

/// What comes before a field's value: `Order { id: `, `Pair(_, `.
fn fmt_open(shape: &Shape, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fmt_path(shape, f)?;
    match shape.field() {
        ShapeField::Named { name, .. } => write!(f, " {{ {name}: "),
        ShapeField::Tuple { index, .. } => {
            f.write_str("(")?;
            for _ in 0..index {
                f.write_str("_, ")?;
            }
            Ok(())
        }
        ShapeField::None => f.write_str("("),
    }
}

/// What comes after a field's value: ` }`, `, .. }`, `)`, `, ..)`.
fn fmt_close(shape: &Shape, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match shape.field() {
        ShapeField::Named { fields, .. } if fields > 1 => f.write_str(", .. }"),
        ShapeField::Named { .. } => f.write_str(" }"),
        ShapeField::Tuple { index, fields } if index + 1 < fields => f.write_str(", ..)"),
        ShapeField::Tuple { .. } | ShapeField::None => f.write_str(")"),
    }
}

/// The path of the type or variant: `ConnState::Draining`.
impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_path(self, f)
    }
}

/// The value inside its wrappers.
fn fmt_inner(inner: &Inner, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match *inner {
        Inner::Unit => f.write_str("()"),
        Inner::None => f.write_str("None"),
        Inner::Bool(v) => write!(f, "{v}"),
        Inner::Char(c) => write!(f, "{c:?}"),
        Inner::I64(v) => write!(f, "{v}"),
        Inner::U64(v) => write!(f, "{v}"),
        Inner::I128(v) => write!(f, "{v}"),
        Inner::U128(v) => write!(f, "{v}"),
        Inner::F32(v) => write!(f, "{v:?}"),
        Inner::F64(v) => write!(f, "{v:?}"),
        Inner::Str {
            ref bytes,
            kept,
            len,
        } => {
            let text = String::from_utf8_lossy(&bytes[..kept]);
            if len as usize > kept {
                let shown = format!("{text:?}");
                write!(f, "{}…\" (len {})", &shown[..shown.len() - 1], len)
            } else {
                write!(f, "{text:?}")
            }
        }
        Inner::Len(len) => write!(f, "len {len}"),
        Inner::Duration(d) => write!(f, "{d:?}"),
        Inner::Pointer(address) => write!(f, "{address:#x}"),
        Inner::ByValue => f.write_str("<by value>"),
        Inner::Name(Some(shape)) => fmt_path(shape, f),
        Inner::Name(None) | Inner::Opaque => f.write_str("?"),
    }
}

/// `value` inside whatever wraps it, its address shown as `#n` if `label`
/// is `Some(n)`.
fn fmt_labelled(value: &Value, f: &mut fmt::Formatter<'_>, label: Option<usize>) -> fmt::Result {
    let decoded = value.decode();
    let wrappers = decoded.wrappers.innermost_first();
    for wrapper in wrappers.iter().rev() {
        match wrapper {
            Wrapper::Ok => f.write_str("Ok(")?,
            Wrapper::Err => f.write_str("Err(")?,
            Wrapper::Field(Some(shape)) => fmt_open(shape, f)?,
            Wrapper::Field(None) => f.write_str("?(")?,
            Wrapper::Some => f.write_str("Some(")?,
        }
    }
    match (label, &decoded.inner) {
        (Some(n), Inner::Pointer(_)) => write!(f, "#{n}")?,
        (_, inner) => fmt_inner(inner, f)?,
    }
    for wrapper in wrappers {
        match wrapper {
            Wrapper::Field(Some(shape)) => fmt_close(shape, f)?,
            _ => f.write_str(")")?,
        }
    }
    Ok(())
}

/// What the snapshot page shows: `Some(3)`, `"alice"`, `len 4`,
/// `ConnState::Draining(3)`, `0x7f…` for an address.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_labelled(self, f, None)
    }
}

/// A value as a page shows it: an address with a label as `#n`, inside
/// whatever wraps it (`Order { conn: #2 }`).
pub(crate) struct Labelled(pub(crate) Value, pub(crate) Option<usize>);

impl fmt::Display for Labelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_labelled(&self.0, f, self.1)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({self})")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::num::NonZeroU16;
    use std::time::Duration;

    use super::*;
    use crate::record::value::{Capture, Collection, EXTRA_WORDS};

    #[test]
    fn primitives_display() {
        assert_eq!(7u32.capture().to_string(), "7");
        assert_eq!((-3i8).capture().to_string(), "-3");
        assert_eq!(u128::MAX.capture().to_string(), u128::MAX.to_string());
        assert_eq!(i128::MIN.capture().to_string(), i128::MIN.to_string());
        assert_eq!(1.5f64.capture().to_string(), "1.5");
        assert_eq!(true.capture().to_string(), "true");
        assert_eq!('x'.capture().to_string(), "'x'");
        assert_eq!(NonZeroU16::new(9).unwrap().capture().to_string(), "9");
        assert_eq!(Duration::from_millis(1500).capture().to_string(), "1.5s");
    }

    #[test]
    fn strings_are_cut_on_char_boundaries() {
        assert_eq!("alice".capture().to_string(), "\"alice\"");
        let long = "é".repeat(20); // 40 bytes
        let shown = long.capture().to_string();
        assert_eq!(shown, format!("\"{}…\" (len 40)", "é".repeat(16)));
        assert_eq!("a\"<b>\n".capture().to_string(), "\"a\\\"<b>\\n\"");
    }

    #[test]
    fn collections_record_length() {
        assert_eq!(vec![1, 2, 3].capture().to_string(), "len 3");
        assert_eq!([0u8; 4].capture().collection(), Some(Collection::Array));
        let map: HashMap<u8, u8> = (0..5).map(|i| (i, i)).collect();
        assert_eq!(Capture::capture(&&map).to_string(), "len 5");
    }

    #[test]
    fn wrappers_nest() {
        assert_eq!(Some(Some(3u8)).capture().to_string(), "Some(Some(3))");
        let r: Result<u8, String> = Err("boom".into());
        assert_eq!(r.capture().to_string(), "Err(\"boom\")");
        assert_eq!(None::<u8>.capture().to_string(), "None");
        let ok: Result<Option<u8>, ()> = Ok(Some(1));
        assert_eq!(ok.capture().to_string(), "Ok(Some(1))");
    }

    #[test]
    fn by_value_shows_that_it_was_passed() {
        assert_eq!(Value::by_value().to_string(), "<by value>");
    }

    static DRAINING: Shape = Shape::new("ConnState")
        .variant("Draining")
        .tuple_field(0, 1);
    static ORDER: Shape = Shape::new("Order").named_field("id", 2);
    static PAIR: Shape = Shape::new("Pair").tuple_field(1, 3);
    static IDLE: Shape = Shape::new("ConnState").variant("Idle");

    fn round_trip(v: Value) -> Value {
        let (h, p, e) = v.to_words();
        Value::from_words(h, p, e)
    }

    #[test]
    fn fields_show_as_patterns_and_keep_their_inner_kind() {
        assert_eq!(Value::named(&IDLE).to_string(), "ConnState::Idle");
        let draining = Value::field(&DRAINING, Value::u64(3));
        assert_eq!(draining.to_string(), "ConnState::Draining(3)");
        assert_eq!(draining.extra_words(), 1);
        let order = Value::field(&ORDER, Value::u128(u128::MAX));
        assert_eq!(
            order.to_string(),
            format!("Order {{ id: {}, .. }}", u128::MAX)
        );
        let pair = Value::field(&PAIR, Value::str("x"));
        assert_eq!(pair.to_string(), "Pair(_, \"x\", ..)");
        let x = 5u8;
        let at = Value::field(&DRAINING, Value::pointer(&x));
        assert!(at.is_pointer());
        assert_eq!(at.address(), Some(&x as *const u8 as u64));
        assert_eq!(at.pointee_type(), Some("u8"));
        assert_eq!(Labelled(at, Some(2)).to_string(), "ConnState::Draining(#2)");
        for v in [Value::named(&IDLE), draining, order, pair, at] {
            assert_eq!(round_trip(v), v, "{v}");
            assert_eq!(round_trip(v).to_string(), v.to_string());
        }
    }

    #[test]
    fn wrappers_and_fields_nest_in_order() {
        let inner = Value::field(&DRAINING, Value::some(Value::u64(1)));
        let v = Value::some(Value::field(&ORDER, inner));
        assert_eq!(
            v.to_string(),
            "Some(Order { id: ConnState::Draining(Some(1)), .. })"
        );
        assert_eq!(round_trip(v), v);
        assert_eq!(
            Value::field(&ORDER, Value::named(&IDLE)).to_string(),
            "Order { id: ConnState::Idle, .. }"
        );
        // A fifth wrapper is not recorded; the four kept still show.
        let mut deep = Value::u64(7);
        for _ in 0..5 {
            deep = Value::field(&DRAINING, deep);
        }
        assert_eq!(
            deep.to_string(),
            "ConnState::Draining(ConnState::Draining(ConnState::Draining(ConnState::Draining(7))))"
        );
    }

    #[test]
    fn a_full_string_shows_its_cut_prefix_inside_each_field() {
        let text = format!("{}{}", "a".repeat(23), "é".repeat(10)); // 43 bytes
        let one = Value::field(&DRAINING, Value::str(&text));
        assert_eq!(
            one.to_string(),
            format!("ConnState::Draining(\"{}…\" (len 43))", "a".repeat(23))
        );
        let two = Value::field(&ORDER, one);
        assert_eq!(
            two.to_string(),
            format!(
                "Order {{ id: ConnState::Draining(\"{}…\" (len 43)), .. }}",
                "a".repeat(16)
            )
        );
    }

    #[test]
    fn a_shape_word_without_its_count_is_never_followed() {
        // What a reader gets when the count of extra words was cleared (a
        // `Narrow`) or the words were not copied: the shape reads as missing.
        let (h, p, _) = Value::field(&DRAINING, Value::u64(3)).to_words();
        let missing = Value::from_words(h & !Value::EXTRA_COUNT_MASK, p, [0x10; EXTRA_WORDS]);
        assert_eq!(missing.to_string(), "?(3)");
        let (h, p, _) = Value::named(&IDLE).to_words();
        let missing = Value::from_words(h & !Value::EXTRA_COUNT_MASK, p, [0x10; EXTRA_WORDS]);
        assert_eq!(missing.to_string(), "?");
    }
}
