//! Serving snapshots over HTTP, with no framework: the query parameters,
//! access control, one snapshot at a time, and the answers, errors
//! included. A framework adapter (`webstack::actix`, `webstack::axum`)
//! only translates its request into a [`Request`] and the [`Response`]
//! back.
//!
//! ```
//! use webstack::serve::{Body, Request, Service, Tokio};
//!
//! # #[tokio::main] async fn main() {
//! // Build once, share between requests (for example in an `Arc`).
//! let service = Service::new("/debug/webstack").maxmem_cap(16 << 20);
//!
//! let request = Request::new("GET", "format=json&augment=0")
//!     .peer(Some("127.0.0.1".parse().unwrap()));
//! let response = service.respond(request, &Tokio).await;
//! assert_eq!(response.status, 200);
//! assert_eq!(response.header("content-type"), Some("application/json"));
//! let Body::Chunks(chunks) = response.body else { unreachable!() };
//! assert!(chunks.concat().starts_with(b"{"));
//!
//! let request = Request::new("GET", "").peer(Some("192.0.2.1".parse().unwrap()));
//! assert_eq!(service.respond(request, &Tokio).await.status, 403);
//! # }
//! ```
//!
//! # Query parameters
//!
//! The query string is a [`View`]: `augment`, `maxmem`, `similarity`,
//! `format` and `fold`, each described, with its values and default, on
//! the [`View`] field of its name; anything else is answered `400`
//! ([`View::from_query`]). A [`Service`] can change the defaults
//! ([`Service::defaults`]), and cap or force `maxmem`.
//!
//! `format=pprof` answers Go's goroutine profile, a gzip-compressed pprof
//! protobuf (see [`render::pprof`]), as `application/octet-stream`. The
//! `400` for a bad `format` value lists the three page formats only, as it
//! always has: clients match on its text. [`Service::goroutine_profile`]
//! also serves the profile where fleet profilers look for it,
//! `/debug/pprof/goroutine`.
//!
//! Anything else — an unknown or repeated parameter, an empty or malformed
//! value, a broken `%` escape, bytes that are not UTF-8, a negative or
//! overflowing number — is answered `400 Bad Request` with one line naming
//! the parameter and its allowed values, before any capture.
//!
//! # Responses
//!
//! `GET` captures a snapshot and renders it; `HEAD` checks access and the
//! parameters and answers the headers a `GET` would, without capturing and
//! without a body ([`Body::None`]). Other methods: `405 Method Not Allowed`
//! with `Allow: GET, HEAD`. Then, in the order checked:
//!
//! - `403 Forbidden` when the client address is not on the allow-list
//!   ([`Service::allow`]; loopback by default);
//! - `400 Bad Request` for a malformed query, as above;
//! - `429 Too Many Requests` with `Retry-After` (whole seconds, rounded up)
//!   when the last snapshot started less than [`Service::min_interval`] ago
//!   (or ended less than [`Service::min_interval_from_end`] ago);
//! - `503 Service Unavailable` with `Retry-After: 1` when a request waited
//!   [`Service::queue_timeout`] for the snapshot in progress to finish
//!   (snapshots are taken one at a time, process-wide, per path);
//! - `500 Internal Server Error` when the capture or rendering panicked (for
//!   example in a [`Capture`](crate::Capture) impl or in
//!   [`Service::map_snapshot`]); the service keeps serving.
//!
//! The capture and rendering run on the [`Runtime`]'s blocking threads, so a
//! snapshot never stalls the async workers. Every response, errors
//! included, carries `Cache-Control: no-store`, `X-Content-Type-Options:
//! nosniff` and [`CONTENT_SECURITY_POLICY`], which allows no script, no
//! external resource and no framing. Error bodies are one line of plain
//! text.
//!
//! # Writing an adapter
//!
//! Build a [`Service`] once; per request, build a [`Request`] from the
//! framework's, await [`Service::respond`] with a [`Runtime`] ([`Tokio`]
//! for any tokio-based framework), and send the [`Response`]'s status,
//! headers and body pieces as they are. See `webstack/src/actix/mod.rs`
//! and `webstack/src/axum/mod.rs`.

mod access;
mod params;
#[cfg(feature = "pprof")]
mod pprof;
mod request;
mod response;
mod throttle;

use std::future::Future;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

pub use access::{Cidr, CidrError};
#[cfg(feature = "pprof")]
pub use pprof::GOROUTINE_PATH;
pub use request::Request;
#[cfg(any(feature = "actix", feature = "axum"))]
pub(crate) use response::Pieces;
pub use response::{Body, Response, CONTENT_SECURITY_POLICY};

use crate::page::page;
use crate::render;
use crate::snapshot::{Options, Snapshot};
use crate::view::{Format, View};
use access::Access;
use params::{Defaults, Output, Params};
use throttle::Throttle;

/// What [`Service::respond`] needs from the async runtime it runs on.
///
/// Both futures must end when dropped without leaving work behind that
/// matters: the core drops them when the client hangs up.
pub trait Runtime: Sync {
    /// Runs `f` on a thread where blocking is fine (a blocking pool), not on
    /// an async worker. `None` if `f` could not run to its end (the pool is
    /// shut down); `f` does not panic (the core catches its panics).
    fn spawn_blocking<F, R>(&self, f: F) -> impl Future<Output = Option<R>> + Send
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;

    /// `future`'s output, or `None` once `timeout` passed first (which may
    /// be [`Duration::MAX`]: never).
    fn timeout<F>(
        &self,
        timeout: Duration,
        future: F,
    ) -> impl Future<Output = Option<F::Output>> + Send
    where
        F: Future + Send;
}

/// The [`Runtime`] of tokio and of the frameworks built on it (actix-web,
/// axum): `tokio::task::spawn_blocking` and `tokio::time::timeout`; must be
/// used inside a tokio runtime with its timer enabled. Feature `tokio`
/// (on with `actix` and with `axum`).
#[cfg(any(feature = "tokio", test))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

#[cfg(any(feature = "tokio", test))]
impl Runtime for Tokio {
    async fn spawn_blocking<F, R>(&self, f: F) -> Option<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        tokio::task::spawn_blocking(f).await.ok()
    }

    async fn timeout<F>(&self, timeout: Duration, future: F) -> Option<F::Output>
    where
        F: Future + Send,
    {
        tokio::time::timeout(timeout, future).await.ok()
    }
}

type MapSnapshot = Arc<dyn Fn(&mut Snapshot) + Send + Sync>;

/// The snapshot service of one path: its access control, limits and
/// defaults. Build it once and answer every request with
/// [`respond`](Service::respond).
///
/// Snapshots are taken one at a time and [`min_interval`](Service::min_interval)
/// holds for every service of the same path in the process, so that a
/// framework building its app once per worker thread still takes one
/// snapshot at a time.
pub struct Service {
    path: String,
    access: Access,
    defaults: Defaults,
    throttle: Throttle,
    map_snapshot: Option<MapSnapshot>,
    /// Where adapters mount [`Service::respond_goroutine`], if anywhere.
    #[cfg(feature = "pprof")]
    goroutine_path: Option<String>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Service");
        d.field("path", &self.path)
            .field("access", &self.access)
            .field("defaults", &self.defaults)
            .field("throttle", &self.throttle)
            .field("map_snapshot", &self.map_snapshot.as_ref().map(|_| "Fn"));
        #[cfg(feature = "pprof")]
        d.field("goroutine_path", &self.goroutine_path);
        d.finish()
    }
}

impl Service {
    /// Serves snapshots at `path`, to loopback clients only.
    pub fn new(path: impl Into<String>) -> Self {
        let path = path.into();
        Service {
            throttle: Throttle::shared(&path),
            path,
            access: Access::loopback(),
            defaults: Defaults::default(),
            map_snapshot: None,
            #[cfg(feature = "pprof")]
            goroutine_path: None,
        }
    }

    /// The path given to [`new`](Service::new), for the adapter to route.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Also allows clients in `range`. Default allow-list: loopback
    /// (`127.0.0.0/8`, `::1`).
    pub fn allow(mut self, range: Cidr) -> Self {
        self.access.allow.get_or_insert_with(Vec::new).push(range);
        self
    }

    /// Also allows Tailscale clients: [`Cidr::TAILSCALE_V4`]
    /// (`100.64.0.0/10`) and [`Cidr::TAILSCALE_V6`] (`fd7a:115c:a1e0::/48`).
    /// Default: not allowed.
    pub fn allow_tailscale(self) -> Self {
        self.allow(Cidr::TAILSCALE_V4).allow(Cidr::TAILSCALE_V6)
    }

    /// Replaces the allow-list, loopback included, by `ranges`; an empty list
    /// denies everyone. Default: loopback.
    pub fn allow_only(mut self, ranges: impl IntoIterator<Item = Cidr>) -> Self {
        self.access.allow = Some(ranges.into_iter().collect());
        self
    }

    /// Serves every client, whatever its address. Snapshots show argument
    /// values and source paths: only use this behind your own guard.
    /// Default: loopback only.
    pub fn allow_any(mut self) -> Self {
        self.access.allow = None;
        self
    }

    /// Trusts the reverse proxy at `proxy`: when a request comes from it,
    /// the client address checked against the allow-list is the one it
    /// forwarded (`Forwarded: for=`, else `X-Forwarded-For`; the nearest hop
    /// that is not itself a trusted proxy). A request from a trusted proxy
    /// without a readable forwarded address is denied. Default: no proxy is
    /// trusted and both headers are ignored.
    pub fn trusted_proxy(mut self, proxy: IpAddr) -> Self {
        self.access.trusted_proxies.push(proxy);
        self
    }

    /// Answers `429` with `Retry-After` to a snapshot request that comes
    /// less than `interval` after the start of the previous snapshot.
    /// Replaces [`min_interval_from_end`](Service::min_interval_from_end).
    /// Default: zero (no limit).
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.throttle.min_interval = interval;
        self.throttle.from_end = false;
        self
    }

    /// Answers `429` with `Retry-After` to a snapshot request that comes
    /// less than `interval` after the end of the previous snapshot (once it
    /// is rendered), as panicparse's complex example measures: however long
    /// snapshots take, `interval` passes between two of them, and a request
    /// that waited for the snapshot in progress is answered `429`.
    /// Replaces [`min_interval`](Service::min_interval). Default: the
    /// interval is measured from the start, and is zero (no limit).
    pub fn min_interval_from_end(mut self, interval: Duration) -> Self {
        self.throttle.min_interval = interval;
        self.throttle.from_end = true;
        self
    }

    /// How long a request waits for the snapshot in progress before it is
    /// answered `503` with `Retry-After: 1` (snapshots are taken one at a
    /// time). Zero answers at once. Default: 10 s.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.throttle.queue_timeout = timeout;
        self
    }

    /// The view a request gets for every parameter it does not give:
    /// `augment`, `maxmem`, `similarity`, `format` and `fold` ([`View`]).
    /// Default: [`View::default()`].
    ///
    /// ```
    /// use webstack::render::Format;
    /// use webstack::serve::Service;
    /// use webstack::View;
    ///
    /// // Native stacks only when asked for with `augment=1`; text by default.
    /// let service = Service::new("/debug/webstack")
    ///     .defaults(View::default().augment(false).format(Format::Text));
    /// ```
    pub fn defaults(mut self, view: View) -> Self {
        self.defaults.view = view;
        self
    }

    /// Upper bound on `maxmem`: larger requested (and default) values are
    /// lowered to it; it is itself at least
    /// [`MIN_MAXMEM`](crate::MIN_MAXMEM). Default: none.
    pub fn maxmem_cap(mut self, bytes: usize) -> Self {
        self.defaults.maxmem_cap = Some(bytes);
        self
    }

    /// Takes every snapshot with `maxmem` = `bytes` (raised to
    /// [`MIN_MAXMEM`](crate::MIN_MAXMEM)), whatever the request asks and
    /// whatever [`defaults`](Service::defaults) and
    /// [`maxmem_cap`](Service::maxmem_cap) say. A malformed `maxmem` is
    /// still answered `400`, as every malformed parameter is. Default: not
    /// forced.
    pub fn force_maxmem(mut self, bytes: usize) -> Self {
        self.defaults.maxmem_forced = Some(bytes);
        self
    }

    /// Runs `f` on every snapshot before it is grouped and rendered, on the
    /// blocking thread: to drop routines, or redact argument values, before
    /// anyone sees them. A panic in `f` answers `500` and the service keeps
    /// serving. Default: none.
    pub fn map_snapshot(mut self, f: impl Fn(&mut Snapshot) + Send + Sync + 'static) -> Self {
        self.map_snapshot = Some(Arc::new(f));
        self
    }

    /// Answers `request`, as the [module docs](self) describe: checks come
    /// first and answer at once; a snapshot waits its turn (dropping this
    /// future while it waits leaves no trace), then is captured on one of
    /// `runtime`'s blocking threads, which keep the turn until it is
    /// rendered even if this future is dropped. Poll it on the thread that
    /// received the request: that thread's bucket is listed first.
    pub async fn respond(&self, request: Request<'_>, runtime: &impl Runtime) -> Response {
        self.respond_with(request, runtime, params::parse).await
    }

    /// [`respond`](Service::respond) with the query read by `parse`.
    async fn respond_with(
        &self,
        request: Request<'_>,
        runtime: &impl Runtime,
        parse: fn(&str, &Defaults) -> Result<Params, String>,
    ) -> Response {
        let head = match request.method {
            "GET" => false,
            "HEAD" => true,
            _ => return Response::method_not_allowed(),
        };
        if !self.access.allows(&request) {
            return Response::error(403, "forbidden: client address not allowed");
        }
        let params = match parse(request.query, &self.defaults) {
            Ok(params) => params,
            Err(message) => return Response::error(400, &message),
        };
        if head {
            return answer(&params, Body::None);
        }
        if let Some(wait) = self.throttle.too_soon() {
            return Response::too_many(wait);
        }
        let Some(mut turn) = self.throttle.turn(runtime).await else {
            return Response::busy();
        };
        if let Err(wait) = self.throttle.start(&mut turn) {
            return Response::too_many(wait);
        }
        let options = params.view.options().serving_thread();
        let job = capture(turn, params, options, self.map_snapshot.clone());
        let produced = runtime.spawn_blocking(job).await;
        match produced {
            Some(Ok(chunks)) => answer(&params, Body::Chunks(chunks)),
            Some(Err(message)) => Response::error(500, &message),
            None => Response::error(500, "snapshot failed: the blocking thread pool is gone"),
        }
    }
}

/// The `200` answer to `params`, with `body`.
fn answer(params: &Params, body: Body) -> Response {
    match params.output {
        Output::Page => Response::new(200, params.view.format.content_type(), body),
        #[cfg(feature = "pprof")]
        Output::Pprof => pprof::profile_answer(body),
        #[cfg(feature = "pprof")]
        Output::Counts => Response::new(200, Format::Text.content_type(), body),
    }
}

/// The capture of one request, for a blocking thread: it keeps the turn
/// and answers a panic with a message.
///
/// A closure built inside [`Service::respond`] would carry its lifetimes, and
/// rustc could then not prove the future of an `async` block awaiting
/// `respond` `Send` ("higher-ranked lifetime error", rust-lang/rust#110338).
fn capture(
    turn: throttle::Turn,
    params: Params,
    options: Options,
    map_snapshot: Option<MapSnapshot>,
) -> impl FnOnce() -> Result<Vec<Vec<u8>>, String> + Send + 'static {
    move || {
        // The turn moves here so that a client hanging up (which drops the
        // future awaiting this) does not let a second capture start before
        // this one ends.
        let _turn = turn;
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            produce(&params, &options, map_snapshot.as_deref())
        }))
        .unwrap_or_else(|panic| {
            let message = panic_message(&*panic);
            Err(format!("snapshot failed: panicked: {message}"))
        })
    }
}

/// Captures, groups and renders: the [`page`] pipeline, rendered as
/// `params` ask.
fn produce(
    params: &Params,
    options: &Options,
    map_snapshot: Option<&(dyn Fn(&mut Snapshot) + Send + Sync)>,
) -> Result<Vec<Vec<u8>>, String> {
    page(
        options,
        params.view.similarity,
        map_snapshot,
        |snapshot, buckets| {
            match params.output {
                Output::Page => {}
                #[cfg(feature = "pprof")]
                Output::Pprof => return Ok(vec![render::pprof::encode(snapshot, buckets)]),
                #[cfg(feature = "pprof")]
                Output::Counts => return pprof::counts(buckets),
            }
            render::render_chunks(snapshot, buckets, &params.view)
                .map_err(|e| format!("snapshot failed: rendering: {e}"))
        },
    )
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(a non-string payload)"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const LOOPBACK: &str = "127.0.0.1";

    fn get(query: &str) -> Request<'_> {
        Request::new("GET", query).peer(LOOPBACK.parse().ok())
    }

    fn body(response: &Response) -> String {
        match &response.body {
            Body::Chunks(chunks) => String::from_utf8(chunks.concat()).unwrap(),
            Body::None => panic!("no body"),
        }
    }

    /// Status, the one line of an error, and the headers every answer has.
    fn assert_error(response: &Response, status: u16, line: &str) {
        assert_eq!(
            (response.status, body(response)),
            (status, format!("{line}\n"))
        );
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_common_headers(response);
    }

    fn assert_common_headers(response: &Response) {
        assert_eq!(response.header("cache-control"), Some("no-store"));
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            response.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY)
        );
    }

    #[tokio::test]
    async fn a_peer_off_the_allow_list_answers_403() {
        let service = Service::new("/serve-403").allow("10.0.0.0/8".parse().unwrap());
        let forbidden = "forbidden: client address not allowed";
        for peer in [Some("192.0.2.1"), Some("11.0.0.1"), None] {
            let request = Request::new("HEAD", "").peer(peer.map(|p| p.parse().unwrap()));
            assert_error(&service.respond(request, &Tokio).await, 403, forbidden);
        }
        for peer in ["10.1.2.3", "::ffff:10.1.2.3", "::1"] {
            let request = Request::new("HEAD", "").peer(peer.parse().ok());
            assert_eq!(service.respond(request, &Tokio).await.status, 200, "{peer}");
        }
    }

    #[tokio::test]
    async fn a_trusted_proxy_forwards_the_client_address() {
        let service = Service::new("/serve-proxy")
            .allow_only(["192.0.2.0/24".parse().unwrap()])
            .trusted_proxy(LOOPBACK.parse().unwrap());
        type Headers<'a> = &'a [(&'a str, &'a [u8])];
        fn head<'a>(headers: Headers<'a>) -> Request<'a> {
            Request::new("HEAD", "")
                .peer(LOOPBACK.parse().ok())
                .headers(headers.iter().copied())
        }
        let cases: [(Headers<'_>, u16); 6] = [
            (&[("X-Forwarded-For", b"192.0.2.9")], 200),
            (&[("x-forwarded-for", b"198.51.100.1, 192.0.2.9")], 200),
            (&[("x-forwarded-for", b"192.0.2.9, 198.51.100.1")], 403),
            (&[("forwarded", b"for=\"[::1]:80\";proto=http")], 403),
            (
                &[
                    ("forwarded", b"for=192.0.2.9"),
                    ("x-forwarded-for", b"8.8.8.8"),
                ],
                200,
            ),
            // Not visible ASCII: unreadable, so denied.
            (&[("x-forwarded-for", "192.0.2.9 \u{e9}".as_bytes())], 403),
        ];
        for (headers, status) in cases {
            let response = service.respond(head(headers), &Tokio).await;
            assert_eq!(response.status, status, "{headers:?}");
        }
        assert_eq!(service.respond(head(&[]), &Tokio).await.status, 403);
    }

    #[tokio::test]
    async fn head_answers_the_headers_of_a_get_without_a_body() {
        let service = Service::new("/serve-head");
        for format in Format::ALL {
            let query = format!("format={format}");
            let request = Request::new("HEAD", &query).peer(LOOPBACK.parse().ok());
            let response = service.respond(request, &Tokio).await;
            assert_eq!((response.status, &response.body), (200, &Body::None));
            assert_eq!(response.header("content-type"), Some(format.content_type()));
            assert_common_headers(&response);
        }
    }

    #[tokio::test]
    async fn other_methods_answer_405_with_allow() {
        let service = Service::new("/serve-405");
        for method in ["POST", "DELETE", "get", "OPTIONS"] {
            let request = Request::new(method, "").peer(LOOPBACK.parse().ok());
            let response = service.respond(request, &Tokio).await;
            assert_error(&response, 405, "method not allowed; allowed: GET, HEAD");
            assert_eq!(response.header("allow"), Some("GET, HEAD"), "{method}");
        }
    }

    #[tokio::test]
    async fn min_interval_answers_429_rounded_up() {
        let service = Service::new("/serve-429").min_interval(Duration::from_millis(1500));
        let first = service.respond(get("augment=0&format=text"), &Tokio);
        assert_eq!(first.await.status, 200);
        let response = service.respond(get("augment=0&format=text"), &Tokio).await;
        assert_error(&response, 429, "too many snapshots; retry in 2 s");
        assert_eq!(response.header("retry-after"), Some("2"));
    }

    /// A request dropped while it waits for the turn never captures; one
    /// that waits past `queue_timeout` answers 503.
    #[tokio::test]
    async fn waiting_for_the_turn() {
        let captures = Arc::new(AtomicUsize::new(0));
        let counter = captures.clone();
        let (entered, inside) = std::sync::mpsc::channel();
        let release = Arc::new(std::sync::Barrier::new(2));
        let hold = release.clone();
        let service = Arc::new(
            Service::new("/serve-turn")
                .queue_timeout(Duration::from_millis(20))
                .map_snapshot(move |_| {
                    if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                        entered.send(()).unwrap();
                        hold.wait();
                    }
                }),
        );
        let first = tokio::spawn({
            let service = service.clone();
            async move {
                let request = get("augment=0&format=text");
                service.respond(request, &Tokio).await.status
            }
        });
        tokio::task::spawn_blocking(move || inside.recv().unwrap())
            .await
            .unwrap();
        let waiting = service.respond(get("augment=0&format=text"), &Tokio);
        let hung_up = Tokio.timeout(Duration::from_millis(5), waiting).await;
        assert!(hung_up.is_none());
        let response = service.respond(get("augment=0&format=text"), &Tokio).await;
        assert_error(
            &response,
            503,
            "busy: another snapshot is in progress; retry shortly",
        );
        assert_eq!(response.header("retry-after"), Some("1"));
        tokio::task::spawn_blocking(move || release.wait())
            .await
            .unwrap();
        assert_eq!(first.await.unwrap(), 200);
        assert_eq!(captures.load(Ordering::SeqCst), 1);
    }

    /// As axum requires of a handler's future.
    #[test]
    fn an_async_block_awaiting_the_response_is_send() {
        fn send<T: Send>(_: T) {}
        let service = Service::new("/serve-send");
        send(async move { service.respond(get(""), &Tokio).await });
    }
}
