//! The read side's model and how it is filled: a [`Snapshot`] of every
//! registered thread and task.
//!
//! - [`model`]: the data every later stage reads (`Snapshot`, `Routine`,
//!   `Frame`, `Arg`, `Origin`, `CreatedBy`, `Process`).
//! - [`capture`]: reading the registry into the model without waiting on
//!   the code that runs.
//! - [`resolve`]: function names, paths shortened for people, and the origin
//!   of a frame's code.
//! - [`lines`]: frames' source lines, looked up when a page shows them.
//! - [`budget`]: the one memory budget (`maxmem`) every stage charges.
//! - [`value_text`]: recorded argument values as text (`Display` for
//!   `Value`, `Labelled`).
//!
//! The native pass ([`crate::native`]) comes after: it adds native frames
//! to a captured snapshot. [`Snapshot::capture`] runs both.

pub(crate) mod budget;
pub(crate) mod capture;
pub(crate) mod intern;
pub(crate) mod lines;
pub(crate) mod model;
pub(crate) mod resolve;
pub(crate) mod table;
pub(crate) mod value_text;

pub use capture::Options;
pub use model::{
    Arg, Args, CreatedBy, Frame, Frames, Kind, LeftOut, Origin, Process, Routine, Routines,
    Snapshot, State, DEFAULT_MAXMEM, JSON_VERSION, MIN_MAXMEM,
};
