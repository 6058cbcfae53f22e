//! Go's `/debug/pprof/goroutine` (feature `pprof`): the route fleet
//! profilers scrape, answered by the same [`Service`] as the page, with its
//! allow-list, one snapshot at a time and its minimum interval.

use super::params::{Defaults, Output, Params};
use super::{Body, Request, Response, Runtime, Service};
use crate::group::{Buckets, Similarity};
use crate::render;
use crate::view::{decode, shorten, Format};

/// Where Go serves its goroutine profile, and where Grafana Alloy's
/// `pyroscope.scrape` (`profile.goroutine`) and Parca look for it by
/// default.
pub const GOROUTINE_PATH: &str = "/debug/pprof/goroutine";

/// The one parameter of the goroutine route, named by its `400` answers.
const DEBUG_RULE: &str = "debug must be 0, 1 or 2";

impl Service {
    /// Also serves Go's goroutine profile at [`GOROUTINE_PATH`]
    /// (`/debug/pprof/goroutine`); see
    /// [`respond_goroutine`](Service::respond_goroutine). Default: not
    /// served.
    pub fn goroutine_profile(self) -> Self {
        self.goroutine_profile_at(GOROUTINE_PATH)
    }

    /// Also serves Go's goroutine profile at `path`. Default: not served.
    pub fn goroutine_profile_at(mut self, path: impl Into<String>) -> Self {
        self.goroutine_path = Some(path.into());
        self
    }

    /// Where the goroutine profile is served, for the adapter to route to
    /// [`respond_goroutine`](Service::respond_goroutine); `None` unless
    /// [`goroutine_profile`](Service::goroutine_profile) or
    /// [`goroutine_profile_at`](Service::goroutine_profile_at) set it.
    pub fn goroutine_path(&self) -> Option<&str> {
        self.goroutine_path.as_deref()
    }

    /// Answers `request` as Go answers `/debug/pprof/goroutine`, by its one
    /// query parameter `debug`:
    ///
    /// - `0` (the default): the goroutine profile, a gzip-compressed pprof
    ///   protobuf ([`render::pprof::encode`]), as
    ///   `application/octet-stream` with `Content-Disposition: attachment;
    ///   filename="goroutine"`;
    /// - `1`: the same samples as Go's counts text
    ///   ([`render::pprof::write_counts`]), `text/plain`;
    /// - `2`: the grouped text dump ([`Format::Text`]).
    ///
    /// `debug=0` and `1` group routines at [`Similarity::AnyValue`]
    /// (arguments are not shown); `debug=2` at the service's default
    /// similarity. Everything else about the answer is
    /// [`respond`](Service::respond)'s: methods, the allow-list, the
    /// service's defaults for `augment` and `maxmem`, one snapshot at a
    /// time (shared with the page), `429`, `503` and `500`. Any other
    /// parameter (Go's `seconds`, for delta profiles, included) is answered
    /// `400`, naming it.
    pub async fn respond_goroutine(
        &self,
        request: Request<'_>,
        runtime: &impl Runtime,
    ) -> Response {
        self.respond_with(request, runtime, parse).await
    }
}

/// Parses the goroutine route's query: `debug=0|1|2` at most once.
fn parse(query: &str, defaults: &Defaults) -> Result<Params, String> {
    let mut debug = None;
    if !query.is_empty() {
        for piece in query.split('&') {
            let (raw_key, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
            match decode(raw_key).as_deref() {
                Some("debug") => {}
                Some("") if piece.is_empty() => {
                    return Err("empty parameter in the query; allowed: debug".to_owned())
                }
                Some(name) => {
                    return Err(format!(
                        "unknown parameter {:?}; allowed: debug",
                        shorten(name)
                    ))
                }
                None => return Err("malformed parameter name; allowed: debug".to_owned()),
            }
            if debug.is_some() {
                return Err(format!("debug given more than once; {DEBUG_RULE}"));
            }
            debug = Some(match decode(raw_value).as_deref() {
                Some("0") => 0,
                Some("1") => 1,
                Some("2") => 2,
                _ => return Err(DEBUG_RULE.to_owned()),
            });
        }
    }
    let view = defaults.bound(defaults.view);
    let (view, output) = match debug.unwrap_or(0) {
        0 => (view.similarity(Similarity::AnyValue), Output::Pprof),
        1 => (view.similarity(Similarity::AnyValue), Output::Counts),
        _ => (view.format(Format::Text), Output::Page),
    };
    Ok(Params { view, output })
}

/// The `200` answer carrying a profile.
pub(super) fn profile_answer(body: Body) -> Response {
    Response::new(200, render::pprof::CONTENT_TYPE, body)
        .with("content-disposition", render::pprof::CONTENT_DISPOSITION)
}

/// The counts text of `buckets`, as one piece.
pub(super) fn counts(buckets: &Buckets<'_>) -> Result<Vec<Vec<u8>>, String> {
    let mut text = Vec::new();
    render::pprof::write_counts(&mut text, buckets)
        .map_err(|e| format!("snapshot failed: rendering: {e}"))?;
    Ok(vec![text])
}

#[cfg(test)]
mod tests {
    use super::super::Tokio;
    use super::*;

    fn ok(query: &str) -> Params {
        parse(query, &Defaults::default()).unwrap()
    }

    fn err(query: &str) -> String {
        parse(query, &Defaults::default()).unwrap_err()
    }

    #[test]
    fn debug_picks_the_form() {
        assert_eq!(ok("").output, Output::Pprof);
        assert_eq!(ok("debug=0").output, Output::Pprof);
        assert_eq!(ok("debug=1").output, Output::Counts);
        assert_eq!(ok("debug=1").view.similarity, Similarity::AnyValue);
        let text = ok("debug=%32");
        assert_eq!(
            (text.output, text.view.format),
            (Output::Page, Format::Text)
        );
        assert_eq!(text.view.similarity, Similarity::default());
    }

    #[test]
    fn anything_else_names_the_problem() {
        for q in ["debug=3", "debug=", "debug", "debug=01", "debug=%ff"] {
            assert_eq!(err(q), DEBUG_RULE, "{q}");
        }
        assert_eq!(
            err("debug=1&debug=1"),
            "debug given more than once; debug must be 0, 1 or 2"
        );
        assert_eq!(
            err("seconds=30"),
            "unknown parameter \"seconds\"; allowed: debug"
        );
        assert_eq!(
            err("debug=1&"),
            "empty parameter in the query; allowed: debug"
        );
        assert_eq!(err("%ff=1"), "malformed parameter name; allowed: debug");
        assert!(err(&"x".repeat(10_000)).len() < 200);
    }

    /// As axum requires of a handler's future.
    #[test]
    fn an_async_block_awaiting_the_goroutine_answer_is_send() {
        fn send<T: Send>(_: T) {}
        let service = Service::new("/serve-send-goroutine").goroutine_profile();
        send(async move {
            let request = Request::new("GET", "");
            service.respond_goroutine(request, &Tokio).await
        });
    }

    #[tokio::test]
    async fn head_answers_the_profile_headers_without_a_body() {
        let service = Service::new("/serve-head-goroutine");
        for (query, content_type) in [
            ("", "application/octet-stream"),
            ("debug=1", "text/plain; charset=utf-8"),
            ("debug=2", "text/plain; charset=utf-8"),
        ] {
            let request = Request::new("HEAD", query).peer(Some("127.0.0.1".parse().unwrap()));
            let response = service.respond_goroutine(request, &Tokio).await;
            assert_eq!((response.status, &response.body), (200, &Body::None));
            assert_eq!(
                response.header("content-type"),
                Some(content_type),
                "{query}"
            );
            assert_eq!(
                response.header("content-disposition").is_some(),
                query.is_empty(),
                "{query}"
            );
        }
    }
}
