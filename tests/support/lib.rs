//! Support code shared by webstack's integration tests, one module per
//! concern; each test file is a test target of this crate and uses what it
//! needs as `support::…`.
//!
//! `slowdown` and `thread_cost` are also included by path into benches of
//! the `webstack` crate, so they use nothing else of this crate.

#[cfg(target_os = "linux")]
pub mod altstack;
pub mod checks;
pub mod child;
pub mod gate;
#[cfg(target_os = "linux")]
pub mod guard_page;
pub mod model;
pub mod normalise;
pub mod poll;
pub mod rng;
pub mod server;
pub mod slowdown;
pub mod snapshot;
pub mod spin;
pub mod stack;
pub mod thread_cost;
pub mod wait;
