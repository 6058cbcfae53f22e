//! The page pipeline, capture → group → render: the one path from the
//! registry to a rendered page, taken by the serving core
//! ([`crate::serve`]), [`dump`](crate::dump::dump) and the dump thread that
//! signals and the panic hook wake.

use crate::group::{Buckets, Similarity};
use crate::snapshot::{Options, Snapshot};

/// Captures a snapshot with `options`, lets `edit` change it (the serving
/// core's `map_snapshot`), groups it at `similarity`, and hands both to
/// `render`, which picks the form (a [`Format`](crate::render::Format), or
/// pprof) and where it goes.
pub(crate) fn page<R>(
    options: &Options,
    similarity: Similarity,
    edit: Option<&(dyn Fn(&mut Snapshot) + Send + Sync)>,
    render: impl FnOnce(&Snapshot, &Buckets<'_>) -> R,
) -> R {
    let mut snapshot = Snapshot::capture(options);
    if let Some(edit) = edit {
        edit(&mut snapshot);
    }
    let buckets = Buckets::aggregate(&snapshot, similarity);
    render(&snapshot, &buckets)
}
