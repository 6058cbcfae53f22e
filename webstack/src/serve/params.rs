//! What a request asks for: the [`View`] its query names over the
//! service's defaults, within the service's `maxmem` bounds, and what the
//! answer is (the page, or a form of Go's goroutine profile).

use crate::snapshot::MIN_MAXMEM;
use crate::view::{self, Asked, View};

/// What a request asks for, after defaults and bounds are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) view: View,
    pub(crate) output: Output,
}

/// What a request is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// The page, rendered as its view says.
    Page,
    /// Go's goroutine profile: gzip-compressed pprof protobuf (`debug=0`).
    #[cfg(feature = "pprof")]
    Pprof,
    /// Go's goroutine profile as counts text (`debug=1`).
    #[cfg(feature = "pprof")]
    Counts,
}

/// The view of a request that names nothing, and the service's bounds on
/// `maxmem`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Defaults {
    pub(crate) view: View,
    /// Larger `maxmem` values are lowered to it (itself raised to
    /// [`MIN_MAXMEM`]); `None`: no cap.
    pub(crate) maxmem_cap: Option<usize>,
    /// The `maxmem` of every request, whatever it asks, when set.
    pub(crate) maxmem_forced: Option<usize>,
}

impl Defaults {
    /// `view` with the `maxmem` bounds applied.
    pub(crate) fn bound(&self, view: View) -> View {
        let maxmem = match (self.maxmem_forced, self.maxmem_cap) {
            (Some(forced), _) => forced,
            (None, Some(cap)) => view.maxmem.min(cap),
            (None, None) => view.maxmem,
        };
        view.maxmem(maxmem.max(MIN_MAXMEM))
    }
}

/// Parses a raw (still percent-encoded) page query over the service's
/// defaults.
///
/// # Errors
/// A one-line message naming the offending parameter and what it accepts.
pub(crate) fn parse(query: &str, defaults: &Defaults) -> Result<Params, String> {
    let (view, output) = match view::parse(query, defaults.view).map_err(|e| e.to_string())? {
        Asked::View(view) => (view, Output::Page),
        #[cfg(feature = "pprof")]
        Asked::Pprof(view) => (view, Output::Pprof),
    };
    Ok(Params {
        view: defaults.bound(view),
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_the_maxmem_cap() {
        let capped = Defaults {
            maxmem_cap: Some(2 << 20),
            ..Defaults::default()
        };
        assert_eq!(parse("", &capped).unwrap().view.maxmem, 2 << 20);
        assert_eq!(
            parse("maxmem=99999999", &capped).unwrap().view.maxmem,
            2 << 20
        );
        assert_eq!(parse("maxmem=5", &capped).unwrap().view.maxmem, MIN_MAXMEM);
        let tiny_cap = Defaults {
            maxmem_cap: Some(10),
            ..Defaults::default()
        };
        assert_eq!(parse("", &tiny_cap).unwrap().view.maxmem, MIN_MAXMEM);
    }

    #[test]
    fn a_forced_maxmem_wins_over_the_request_default_and_cap() {
        let forced = Defaults {
            maxmem_forced: Some(32 << 20),
            maxmem_cap: Some(2 << 20),
            ..Defaults::default()
        };
        for query in [
            "",
            "maxmem=0",
            "maxmem=1048576",
            "maxmem=999999999999",
            "format=json",
        ] {
            assert_eq!(
                parse(query, &forced).unwrap().view.maxmem,
                32 << 20,
                "{query}"
            );
        }
        // The value is still checked, as every parameter is.
        assert!(parse("maxmem=lots", &forced)
            .unwrap_err()
            .starts_with("maxmem must be a number of bytes"));
        let tiny = Defaults {
            maxmem_forced: Some(10),
            ..Defaults::default()
        };
        assert_eq!(
            parse("maxmem=99999999", &tiny).unwrap().view.maxmem,
            MIN_MAXMEM
        );
    }

    #[test]
    fn the_defaults_view_answers_what_the_query_leaves_out() {
        let defaults = Defaults {
            view: View::default().augment(false).fold(false),
            ..Defaults::default()
        };
        let params = parse("similarity=anyvalue", &defaults).unwrap();
        assert_eq!(
            params.view,
            defaults.view.similarity(crate::group::Similarity::AnyValue)
        );
        assert_eq!(params.output, Output::Page);
        #[cfg(feature = "pprof")]
        assert_eq!(
            parse("format=pprof", &defaults).unwrap().output,
            Output::Pprof
        );
    }
}
