//! Native stacks of every thread (issue: native stacks). Not implemented yet:
//! `augment` currently adds nothing.

use crate::snapshot::Snapshot;

pub(crate) fn augment(_snapshot: &mut Snapshot) {}
