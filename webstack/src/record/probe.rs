//! How `#[instrument]` records one parameter: [`Probe`] and the `Via*`
//! traits, which pick by auto-ref specialisation, at compile time, the
//! cheapest way that type allows. Reached by the macros' generated code
//! through `__private`.

use std::num::{
    NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU16, NonZeroU32,
    NonZeroU64, NonZeroU8, NonZeroUsize,
};
use std::ops::Deref;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;

use crate::record::frame_args::{ArgWords, Fixed, Narrow};
use crate::record::value::{fixed_header, Capture, Value};

/// A parameter about to be recorded; the `Via*` traits pick, by auto-ref
/// specialisation, the best way to record it. The macros call
/// `(&&&&&Probe(&param)).__webstack_value()`: method lookup strips one `&`
/// per level, so the first level whose impl matches wins, in the order
/// [`ViaNarrow`], [`ViaCapture`], [`ViaPointee`], [`ViaRef`], [`ViaValue`].
/// The choice is made at compile time.
#[derive(Debug)]
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// Preferred: a type whose [`Capture`] impl records only a header and a
/// payload (integers, `NonZero` integers, floats, `bool`, `char`, `()`, an
/// `Option` of these, the length of a `Vec` or slice, and references to all
/// of them) is kept as a two-word [`Narrow`], or as the payload alone
/// ([`Fixed`]) when the header depends only on the type.
pub trait ViaNarrow {
    /// How the value is kept.
    type Words: ArgWords;
    /// The recorded value.
    fn __webstack_value(&self) -> Self::Words;
}

macro_rules! via_narrow {
    ($([$($g:ident),*] $t:ty => $words:ty, $new:path;)*) => {$(
        impl<$($g),*> ViaNarrow for &&&&Probe<'_, $t> {
            type Words = $words;
            #[inline(always)]
            fn __webstack_value(&self) -> $words {
                $new(Capture::capture(self.0))
            }
        }
        impl<$($g),*> ViaNarrow for &&&&Probe<'_, &$t> {
            type Words = $words;
            #[inline(always)]
            fn __webstack_value(&self) -> $words {
                $new(Capture::capture(self.0))
            }
        }
        impl<$($g),*> ViaNarrow for &&&&Probe<'_, &mut $t> {
            type Words = $words;
            #[inline(always)]
            fn __webstack_value(&self) -> $words {
                $new(Capture::capture(self.0))
            }
        }
    )*};
}

macro_rules! via_fixed {
    ($($header:ident: $([$($g:ident),*] $t:ty),*;)*) => {
        via_narrow! {$($(
            [$($g),*] $t => Fixed<{ fixed_header::$header }>, Fixed::new;
        )*)*}
    };
}

via_fixed! {
    U64: [] u8, [] u16, [] u32, [] u64, [] usize,
        [] NonZeroU8, [] NonZeroU16, [] NonZeroU32, [] NonZeroU64, [] NonZeroUsize;
    I64: [] i8, [] i16, [] i32, [] i64, [] isize,
        [] NonZeroI8, [] NonZeroI16, [] NonZeroI32, [] NonZeroI64, [] NonZeroIsize;
    F32: [] f32;
    F64: [] f64;
    BOOL: [] bool;
    CHAR: [] char;
    UNIT: [] ();
    VEC_LEN: [T] Vec<T>;
    SLICE_LEN: [T] [T];
}

macro_rules! via_two_words {
    ($([$($g:ident),*] $t:ty),* $(,)?) => {
        via_narrow! {$([$($g),*] $t => Narrow, Narrow::new;)*}
    };
}

// An `Option`'s header says whether it is `Some`.
via_two_words! {
    [] Option<u8>, [] Option<u16>, [] Option<u32>, [] Option<u64>, [] Option<usize>,
    [] Option<i8>, [] Option<i16>, [] Option<i32>, [] Option<i64>, [] Option<isize>,
    [] Option<f32>, [] Option<f64>, [] Option<bool>, [] Option<char>,
    [] Option<NonZeroU64>, [] Option<NonZeroUsize>,
}

/// Next: the type implements [`Capture`].
pub trait ViaCapture {
    /// The recorded value.
    fn __webstack_value(&self) -> Value;
}

impl<T: Capture + ?Sized> ViaCapture for &&&Probe<'_, T> {
    #[inline(always)]
    fn __webstack_value(&self) -> Value {
        self.0.capture()
    }
}

/// Next: a smart or raw pointer to a type without `Capture` (or a reference
/// to one): record the address of the value it points at, which identifies
/// the object (the pointer's own address would be a slot of the call).
pub trait ViaPointee {
    /// The recorded value.
    fn __webstack_value(&self) -> Value;
}

macro_rules! via_pointee {
    ($([$($g:tt)*] $t:ty => |$p:ident| $target:expr;)*) => {$(
        impl<$($g)*> ViaPointee for &&Probe<'_, $t> {
            #[inline(always)]
            fn __webstack_value(&self) -> Value {
                let $p = self.0;
                Value::address_of($target)
            }
        }
        impl<$($g)*> ViaPointee for &&Probe<'_, &$t> {
            #[inline(always)]
            fn __webstack_value(&self) -> Value {
                let $p = *self.0;
                Value::address_of($target)
            }
        }
        impl<$($g)*> ViaPointee for &&Probe<'_, &mut $t> {
            #[inline(always)]
            fn __webstack_value(&self) -> Value {
                let $p = &**self.0;
                Value::address_of($target)
            }
        }
    )*};
}

via_pointee! {
    [T: ?Sized] Box<T> => |p| &**p as *const T;
    [T: ?Sized] Rc<T> => |p| Rc::as_ptr(p);
    [T: ?Sized] Arc<T> => |p| Arc::as_ptr(p);
    [P: Deref] Pin<P> => |p| &**p as *const P::Target;
    [T: ?Sized] *const T => |p| *p;
    [T: ?Sized] *mut T => |p| p.cast_const();
    [T: ?Sized] NonNull<T> => |p| p.as_ptr().cast_const();
}

/// Next: a reference to a type without `Capture`: record the pointee's
/// address.
pub trait ViaRef {
    /// The recorded value.
    fn __webstack_value(&self) -> Value;
}

impl<T: ?Sized> ViaRef for &Probe<'_, &T> {
    #[inline(always)]
    fn __webstack_value(&self) -> Value {
        Value::pointer::<T>(*self.0)
    }
}

impl<T: ?Sized> ViaRef for &Probe<'_, &mut T> {
    #[inline(always)]
    fn __webstack_value(&self) -> Value {
        Value::pointer::<T>(&**self.0)
    }
}

/// Last: any other value, taken by value: record only that it was passed
/// ([`Value::by_value`]), in one word. Its address would be that of the
/// call's own copy: an async call moves it into its future, and the next
/// call from the same caller reuses the slot, so unrelated calls would seem
/// to share an object.
pub trait ViaValue {
    /// The recorded value.
    fn __webstack_value(&self) -> Fixed<{ fixed_header::BY_VALUE }>;
}

impl<T: ?Sized> ViaValue for Probe<'_, T> {
    #[inline(always)]
    fn __webstack_value(&self) -> Fixed<{ fixed_header::BY_VALUE }> {
        Fixed::new(Value::by_value())
    }
}
