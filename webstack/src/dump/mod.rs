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

use crate::group::Buckets;
use crate::page::page;
use crate::render;
use crate::snapshot::Snapshot;
use crate::view::{Format, View};

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
    /// What the dump shows and in which form: the page's settings.
    /// Default: [`View::default()`] in [`Format::Text`], the form of Go's
    /// goroutine dump (a JSON dump is `Format::Json`).
    pub view: View,
    /// How long a panicking thread waits for its dump before it goes on
    /// unwinding (or aborting) without it. Default: 5 s.
    pub timeout: Duration,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            view: View::default().format(Format::Text),
            timeout: Duration::from_secs(5),
        }
    }
}

impl DumpOptions {
    /// Changes [`DumpOptions::view`], starting from the current one (the
    /// text form by default):
    ///
    /// ```
    /// use webstack::DumpOptions;
    ///
    /// let options = DumpOptions::default().view(|view| view.augment(false));
    /// assert_eq!(options.view.format, webstack::render::Format::Text);
    /// ```
    pub fn view(mut self, change: impl FnOnce(View) -> View) -> Self {
        self.view = change(self.view);
        self
    }

    /// Sets [`DumpOptions::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Captures every thread and task now and writes the grouped page, as
/// `options.view` says (by default the text form, what the page serves for
/// `format=text`), to `out`.
///
/// ```
/// use webstack::DumpOptions;
///
/// let mut out = Vec::new();
/// webstack::dump(&mut out, &DumpOptions::default().view(|v| v.augment(false))).unwrap();
/// assert!(String::from_utf8(out).unwrap().starts_with("webstack "));
/// ```
pub fn dump<W: Write + ?Sized>(out: &mut W, options: &DumpOptions) -> io::Result<()> {
    page(
        &options.view.options(),
        options.view.similarity,
        None,
        |snapshot, buckets| write_dump(out, snapshot, buckets, &options.view),
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

/// Writes `snapshot`, grouped in `buckets`, as `view` says: the render step
/// of a dump's [`page`].
fn write_dump<W: Write + ?Sized>(
    out: &mut W,
    snapshot: &Snapshot,
    buckets: &Buckets<'_>,
    view: &View,
) -> io::Result<()> {
    render::render_to(out, snapshot, buckets, view).map_err(io::Error::other)
}
