//! The [`Capture`] trait and its impls for the standard library's types.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::num::{
    NonZeroI128, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU128,
    NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU8, NonZeroUsize,
};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::{Collection, Value};

/// Records an argument's value when an instrumented function is called.
///
/// `capture` runs on the hot path of every instrumented call, so it must be
/// cheap: build a [`Value`] from a number, a short string, a length or an
/// address. Never format, allocate or lock here.
///
/// Implemented for the integer and float types, `bool`, `char`, `str`,
/// `String`, slices, arrays, `Vec`, `VecDeque`, `HashMap`, `BTreeMap`,
/// `HashSet`, `BTreeSet` (their length), `Option` and `Result` of capturable
/// types, `Duration`, the `NonZero*` integers, `()`, and references, `Box`,
/// `Rc` and `Arc` of all of these.
///
/// A parameter whose type has no impl is recorded by what identifies it. A
/// reference (`&T`, `&mut T`), a smart pointer (`Box<T>`, `Rc<T>`, `Arc<T>`,
/// `Pin<P>`) or a raw pointer records the address and type name of the value
/// it points at, so two frames holding the same object can be recognised. A
/// parameter taken by value records no address ([`Value::by_value`]): its
/// address would be that of the call's own copy, which another call may reuse
/// once this one has moved it into its future.
///
/// # Your own types: `#[derive(Capture)]`
///
/// The derive records a struct or enum as a Rust pattern that matches it:
///
/// - an enum: its variant (`ConnState::Idle`), and the value of the
///   variant's field marked `#[capture]`, if one is
///   (`ConnState::Draining(3)`, `ConnState::Closed { code: 1006, .. }`);
/// - a struct: the value of its field marked `#[capture]`
///   (`Order { id: 42, .. }`); a struct with a single field records it
///   without the mark (`UserId(7)`), one without fields records its name.
///   A struct with several fields and none marked is a compile error that
///   asks for the mark.
///
/// ```
/// #[derive(webstack::Capture)]
/// pub struct UserId(u64);
///
/// #[derive(webstack::Capture)]
/// pub enum ConnState {
///     Idle,
///     Draining(#[capture] u32),
///     Closed { #[capture] code: u16, reason: String },
/// }
///
/// #[derive(webstack::Capture)]
/// pub struct Order {
///     #[capture]
///     id: u64,
///     lines: Vec<String>,
/// }
///
/// #[webstack::instrument]
/// fn load_profile(user: &UserId, state: &ConnState, order: &Order) -> u64 {
///     user.0 * 2
/// }
///
/// use webstack::Capture;
/// assert_eq!(load_profile(&UserId(21), &ConnState::Idle, &Order { id: 1, lines: vec![] }), 42);
/// assert_eq!(UserId(7).capture().to_string(), "UserId(7)");
/// assert_eq!(ConnState::Idle.capture().to_string(), "ConnState::Idle");
/// assert_eq!(ConnState::Draining(3).capture().to_string(), "ConnState::Draining(3)");
/// let closed = ConnState::Closed { code: 1006, reason: "gone".into() };
/// assert_eq!(closed.capture().to_string(), "ConnState::Closed { code: 1006, .. }");
/// let order = Order { id: 42, lines: vec![] };
/// assert_eq!(order.capture().to_string(), "Order { id: 42, .. }");
/// ```
///
/// It costs what capturing the field costs, plus one word: the variant and
/// field names are a `&'static` [`Shape`](super::Shape) recorded by address
/// ([`Value::field`], [`Value::named`]), and turned into text only when a
/// snapshot is rendered. The field's own value stays typed: an address
/// inside still gets its `#n` label, and the similarity levels compare it as
/// they compare a bare one. Type parameters that appear in the marked field's
/// type get a `Capture` bound. A type with a `Capture` impl records its value
/// instead of its address: leave the derive off a type shared by many tasks
/// (`&AppState`) to see that they hold the same object.
///
/// # Example: a hand-written impl
///
/// For anything the derive does not express (two fields, a computed value),
/// implement the trait with [`Value`]'s constructors:
///
/// ```
/// use webstack::{Capture, Value};
///
/// pub struct Span { start: u64, end: u64 }
///
/// impl Capture for Span {
///     fn capture(&self) -> Value {
///         Value::u64(self.end - self.start)
///     }
/// }
///
/// #[webstack::instrument]
/// fn read(span: &Span) -> u64 {
///     span.start
/// }
///
/// assert_eq!(read(&Span { start: 2, end: 9 }), 2);
/// assert_eq!(Span { start: 2, end: 9 }.capture().to_string(), "7");
/// ```
pub trait Capture {
    /// Returns the value to record for `self`.
    fn capture(&self) -> Value;
}

macro_rules! capture_as {
    ($ctor:ident as $as:ty: $($t:ty),*) => {$(
        impl Capture for $t {
            #[inline(always)]
            fn capture(&self) -> Value {
                Value::$ctor(*self as $as)
            }
        }
    )*};
}

capture_as!(i64 as i64: i8, i16, i32, i64, isize);
capture_as!(u64 as u64: u8, u16, u32, u64, usize);
capture_as!(i128 as i128: i128);
capture_as!(u128 as u128: u128);
capture_as!(f32 as f32: f32);
capture_as!(f64 as f64: f64);
capture_as!(bool as bool: bool);
capture_as!(char as char: char);

macro_rules! capture_nonzero {
    ($ctor:ident as $as:ty: $($t:ty),*) => {$(
        impl Capture for $t {
            #[inline(always)]
            fn capture(&self) -> Value {
                Value::$ctor(self.get() as $as)
            }
        }
    )*};
}

capture_nonzero!(i64 as i64: NonZeroI8, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroIsize);
capture_nonzero!(u64 as u64: NonZeroU8, NonZeroU16, NonZeroU32, NonZeroU64, NonZeroUsize);
capture_nonzero!(i128 as i128: NonZeroI128);
capture_nonzero!(u128 as u128: NonZeroU128);

impl Capture for () {
    #[inline(always)]
    fn capture(&self) -> Value {
        Value::unit()
    }
}

impl Capture for str {
    #[inline(always)]
    fn capture(&self) -> Value {
        Value::str(self)
    }
}

impl Capture for String {
    #[inline(always)]
    fn capture(&self) -> Value {
        Value::str(self)
    }
}

impl Capture for Cow<'_, str> {
    #[inline(always)]
    fn capture(&self) -> Value {
        Value::str(self)
    }
}

impl Capture for Duration {
    #[inline(always)]
    fn capture(&self) -> Value {
        Value::duration(*self)
    }
}

macro_rules! capture_len {
    ($kind:ident: $($t:ty => [$($g:tt)*]),*) => {$(
        impl<$($g)*> Capture for $t {
            #[inline(always)]
            fn capture(&self) -> Value {
                Value::len(Collection::$kind, self.len())
            }
        }
    )*};
}

capture_len!(Slice: [T] => [T]);
capture_len!(Vec: Vec<T> => [T]);
capture_len!(VecDeque: VecDeque<T> => [T]);
capture_len!(HashMap: HashMap<K, V, S> => [K, V, S]);
capture_len!(BTreeMap: BTreeMap<K, V> => [K, V]);
capture_len!(HashSet: HashSet<T, S> => [T, S]);
capture_len!(BTreeSet: BTreeSet<T> => [T]);

impl<T, const N: usize> Capture for [T; N] {
    #[inline(always)]
    fn capture(&self) -> Value {
        Value::len(Collection::Array, N)
    }
}

impl<T: Capture> Capture for Option<T> {
    #[inline(always)]
    fn capture(&self) -> Value {
        match self {
            Some(inner) => Value::some(inner.capture()),
            None => Value::none(),
        }
    }
}

impl<T: Capture, E: Capture> Capture for Result<T, E> {
    #[inline(always)]
    fn capture(&self) -> Value {
        match self {
            Ok(inner) => Value::ok(inner.capture()),
            Err(inner) => Value::err(inner.capture()),
        }
    }
}

macro_rules! capture_deref {
    ($($t:ty),*) => {$(
        impl<T: Capture + ?Sized> Capture for $t {
            #[inline(always)]
            fn capture(&self) -> Value {
                (**self).capture()
            }
        }
    )*};
}

capture_deref!(&T, &mut T, Box<T>, Rc<T>, Arc<T>);
