//! What an adapter hands the core: the parts of an HTTP request it reads.

use std::net::IpAddr;

/// The parts of an HTTP request that [`Service::respond`](super::Service::respond)
/// reads, borrowed from the framework's own request type.
///
/// ```
/// use webstack::serve::Request;
///
/// let request = Request::new("GET", "format=json")
///     .peer(Some("127.0.0.1".parse().unwrap()))
///     .headers([("x-forwarded-for", &b"192.0.2.7"[..])]);
/// # let _ = request;
/// ```
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) query: &'a str,
    pub(crate) peer: Option<IpAddr>,
    headers: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Request<'a> {
    /// A request with `method` (as sent, e.g. `GET`) and the raw, still
    /// percent-encoded `query` string (without the `?`; empty when there is
    /// none). No peer address and no headers until set. (The path is the
    /// adapter's business: it routes to the service; the page's links are
    /// relative to it.)
    pub fn new(method: &'a str, query: &'a str) -> Self {
        Request {
            method,
            query,
            peer: None,
            headers: Vec::new(),
        }
    }

    /// The address of the connection's other end, checked against the
    /// allow-list. Default: `None`, which every allow-list denies.
    pub fn peer(mut self, peer: Option<IpAddr>) -> Self {
        self.peer = peer;
        self
    }

    /// The request's headers as (name, value) pairs, a name once per line
    /// it was sent on; names match without regard to case. Only
    /// `Forwarded` and `X-Forwarded-For` are read, and only from a trusted
    /// proxy. Default: none.
    pub fn headers(mut self, headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        self.headers = headers.into_iter().collect();
        self
    }

    /// The values of every line of header `name`, in order.
    pub(crate) fn header_values<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, value)| value)
    }
}
