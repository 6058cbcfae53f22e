//! The seals on the traits of `__private` whose results unsafe code trusts.
//!
//! `#[doc(hidden)]` keeps `__private` out of the docs, not out of reach: any
//! crate can name its traits. A trait whose return values the runtime relies
//! on for memory safety (a word later called as a function, a count stored
//! beside an address) has the trait of the same name here as a supertrait.
//! These are public, so they may bound a public trait, but live in a private
//! module, so no other crate can implement them, and hence none can implement
//! the sealed trait: only the impls in this crate exist. Generated code never
//! implements them. One seal per sealed trait, so that the compiler's "these
//! types implement it" hint lists the right ones.

/// Seal of [`crate::__private::Owner`].
pub trait Owner {}

/// Seal of [`crate::__private::ArgWords`].
pub trait ArgWords {}

/// Seal of [`crate::__private::FrameArgs`].
pub trait FrameArgs {}
