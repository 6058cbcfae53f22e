//! What the core hands back: status, headers and body, with the headers
//! every answer carries.

use std::time::Duration;

/// The `Content-Security-Policy` of every response: the page is inline CSS
/// and data-URL images only, and may not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An answer for the adapter to send as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status code: 200, 400, 403, 405, 429, 500 or 503.
    pub status: u16,
    /// The headers, names in lower case: `content-type`, `cache-control`,
    /// `x-content-type-options`, `content-security-policy`, and `allow`,
    /// `retry-after` or `content-disposition` where the answer calls for
    /// them.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

/// The body of a [`Response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// No body, not even an empty one: the answer to `HEAD`, whose length
    /// is not known without a capture (send no `Content-Length`).
    None,
    /// The body in pieces to send in order, as
    /// [`render_chunks`](crate::render::render_chunks) made them (an error
    /// is one piece); its length is the sum of theirs.
    Chunks(Vec<Vec<u8>>),
}

/// The pieces of a [`Body::Chunks`] as an adapter sends them: in order,
/// each handed over without a copy, with the length still to send (for
/// `Content-Length` and size hints).
#[cfg(any(feature = "actix", feature = "axum"))]
pub(crate) struct Pieces {
    pieces: std::collections::VecDeque<Vec<u8>>,
    remaining: u64,
}

#[cfg(any(feature = "actix", feature = "axum"))]
impl Pieces {
    pub(crate) fn new(pieces: Vec<Vec<u8>>) -> Pieces {
        let remaining = pieces.iter().map(|p| p.len() as u64).sum();
        Pieces {
            pieces: pieces.into(),
            remaining,
        }
    }

    /// The next piece, if any.
    pub(crate) fn next_piece(&mut self) -> Option<Vec<u8>> {
        let piece = self.pieces.pop_front()?;
        self.remaining -= piece.len() as u64;
        Some(piece)
    }

    /// Bytes not yet handed over.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether every piece was handed over (the axum body's end of stream).
    #[cfg(feature = "axum")]
    pub(crate) fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

impl Response {
    /// `status` with `content_type` and the headers of every answer.
    pub(crate) fn new(status: u16, content_type: &'static str, body: Body) -> Response {
        let headers = [
            ("content-type", content_type),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("content-security-policy", CONTENT_SECURITY_POLICY),
        ]
        .map(|(name, value)| (name, value.to_owned()))
        .into();
        Response {
            status,
            headers,
            body,
        }
    }

    /// A one-line plain-text error.
    pub(crate) fn error(status: u16, message: &str) -> Response {
        // Messages may echo request text: keep them to one line.
        let mut line: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        line.push('\n');
        let body = Body::Chunks(vec![line.into_bytes()]);
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub(crate) fn method_not_allowed() -> Response {
        Response::error(405, "method not allowed; allowed: GET, HEAD").with("allow", "GET, HEAD")
    }

    /// `429` asking to come back after `wait`, in whole seconds rounded up.
    pub(crate) fn too_many(wait: Duration) -> Response {
        let secs = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .max(1);
        Response::error(429, &format!("too many snapshots; retry in {secs} s"))
            .with("retry-after", &secs.to_string())
    }

    pub(crate) fn busy() -> Response {
        Response::error(503, "busy: another snapshot is in progress; retry shortly")
            .with("retry-after", "1")
    }

    pub(crate) fn with(mut self, name: &'static str, value: &str) -> Response {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// The value of header `name` (in any case), if the response has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}
