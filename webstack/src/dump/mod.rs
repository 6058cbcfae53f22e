//! Dumps without a web server: the grouped text form of a snapshot (what the
//! page serves for `format=text`) written to any writer ([`dump`],
//! [`dump_to_string`]), printed to stderr when the process receives a signal
//! ([`dump_on_signal`], `kill -QUIT` as in Go and the JVM), or after a
//! panic's message ([`panic_hook`], Go's crash output).
//!
//! The signal handler and the panic hook capture nothing themselves: both
//! wake one dedicated thread, `webstack-dump`, which takes the snapshot and
//! writes it. A signal handler thus only writes one byte to a pipe, and a
//! panicking thread waits for the dump for at most
//! [`DumpOptions::timeout`], whatever the state it panicked in.

use std::io::{self, Write};
use std::time::Duration;

use crate::group::{Buckets, Similarity};
use crate::page::page;
use crate::render::{self, Detail, Format, Links};
use crate::snapshot::{Options, Snapshot, DEFAULT_MAXMEM};

#[cfg(unix)]
mod panic;
#[cfg(target_os = "linux")]
mod signal;
#[cfg(unix)]
mod worker;

#[cfg(unix)]
pub use panic::{panic_hook, panic_hook_with};
#[cfg(target_os = "linux")]
pub use signal::{dump_on_signal, dump_on_signal_with, DumpSignal, SignalError};

/// How to take and print a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpOptions {
    /// Capture native stacks too ([`Options::augment`]). Default: `true`.
    pub augment: bool,
    /// Memory bound of the snapshot ([`Options::maxmem`]). Default:
    /// [`DEFAULT_MAXMEM`].
    pub maxmem: usize,
    /// How alike routines must be to share a bucket. Default:
    /// [`Similarity::AnyPointer`], as on the page.
    pub similarity: Similarity,
    /// Fold runs of std and runtime frames ([`Detail::fold`]). Default:
    /// `true`.
    pub fold: bool,
    /// How long a panicking thread waits for its dump before it goes on
    /// unwinding (or aborting) without it. Default: 5 s.
    pub timeout: Duration,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            augment: true,
            maxmem: DEFAULT_MAXMEM,
            similarity: Similarity::default(),
            fold: true,
            timeout: Duration::from_secs(5),
        }
    }
}

impl DumpOptions {
    /// Sets [`DumpOptions::augment`].
    pub fn augment(mut self, augment: bool) -> Self {
        self.augment = augment;
        self
    }

    /// Sets [`DumpOptions::maxmem`].
    pub fn maxmem(mut self, bytes: usize) -> Self {
        self.maxmem = bytes;
        self
    }

    /// Sets [`DumpOptions::similarity`].
    pub fn similarity(mut self, similarity: Similarity) -> Self {
        self.similarity = similarity;
        self
    }

    /// Sets [`DumpOptions::fold`].
    pub fn fold(mut self, fold: bool) -> Self {
        self.fold = fold;
        self
    }

    /// Sets [`DumpOptions::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn capture_options(&self) -> Options {
        Options::default().augment(self.augment).maxmem(self.maxmem)
    }
}

/// Captures every thread and task now and writes the grouped text dump
/// (what the page serves for `format=text`) to `out`.
///
/// ```
/// let mut out = Vec::new();
/// webstack::dump(&mut out, &webstack::DumpOptions::default().augment(false)).unwrap();
/// assert!(String::from_utf8(out).unwrap().starts_with("webstack "));
/// ```
pub fn dump<W: Write + ?Sized>(out: &mut W, options: &DumpOptions) -> io::Result<()> {
    page(
        &options.capture_options(),
        options.similarity,
        None,
        |snapshot, buckets| write_dump(out, snapshot, buckets, options),
    )
}

/// [`dump`] into a `String`.
pub fn dump_to_string(options: &DumpOptions) -> String {
    let mut out = Vec::new();
    dump(&mut out, options).expect("writing to a Vec does not fail");
    String::from_utf8(out).expect("the text form is UTF-8")
}

/// Writes one line to stderr and ignores a failure, as std's panic hook
/// does: `eprintln!` panics when stderr fails (`EPIPE` once the process
/// reading it went away), and a panic inside a panic hook aborts.
pub(crate) fn note(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// Writes `snapshot`, grouped in `buckets`, as text: the render step of a
/// dump's [`page`].
fn write_dump<W: Write + ?Sized>(
    out: &mut W,
    snapshot: &Snapshot,
    buckets: &Buckets,
    options: &DumpOptions,
) -> io::Result<()> {
    let links = Links {
        augment: options.augment,
        maxmem: options.maxmem,
        similarity: options.similarity,
        ..Links::default()
    };
    render::render_to_with(
        out,
        snapshot,
        buckets,
        Format::Text,
        &links,
        Detail::default().fold(options.fold),
    )
    .map_err(io::Error::other)
}
