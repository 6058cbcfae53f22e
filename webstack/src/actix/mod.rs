//! Serving snapshots with actix-web (feature `actix`, on by default).
//!
//! Two ways in:
//!
//! - [`snapshot_handler`], a plain handler for a route you guard yourself:
//!
//!   ```no_run
//!   use actix_web::{web, App, HttpServer};
//!
//!   # async fn run() -> std::io::Result<()> {
//!   HttpServer::new(|| {
//!       App::new().route("/debug/webstack", web::get().to(webstack::actix::snapshot_handler))
//!   })
//!   .bind("127.0.0.1:6060")?
//!   .run()
//!   .await
//!   # }
//!   ```
//!
//! - [`Webstack`], a service with access control, rate limiting and its own
//!   defaults, each one line:
//!
//!   ```no_run
//!   use std::time::Duration;
//!   use actix_web::{App, HttpServer};
//!   use webstack::actix::Webstack;
//!
//!   # async fn run() -> std::io::Result<()> {
//!   HttpServer::new(|| {
//!       App::new().service(
//!           Webstack::new("/debug/webstack")
//!               .allow_tailscale()
//!               .allow("10.20.0.0/16".parse().unwrap())
//!               .trusted_proxy("127.0.0.1".parse().unwrap())
//!               .min_interval(Duration::from_secs(2))
//!               .augment_default(false)
//!               .maxmem_cap(16 << 20),
//!       )
//!   })
//!   .bind("0.0.0.0:6060")?
//!   .run()
//!   .await
//!   # }
//!   ```
//!
//! # Query parameters
//!
//! | parameter | values | default |
//! |---|---|---|
//! | `augment` | `0` or `1`: also capture native stacks | `1` |
//! | `maxmem` | bytes the snapshot may use; below 1048576 raised to it | `67108864` |
//! | `similarity` | `exactflags`, `exactlines`, `anypointer`, `anyvalue` | `anypointer` |
//! | `format` | `html`, `json`, `text` | `html` |
//!
//! Anything else — an unknown or repeated parameter, an empty or malformed
//! value, a broken `%` escape, bytes that are not UTF-8, a negative or
//! overflowing number — is answered `400 Bad Request` with one line naming
//! the parameter and its allowed values, before any capture.
//!
//! # Responses
//!
//! `GET` captures a snapshot and renders it; `HEAD` checks access and the
//! parameters and answers the headers a `GET` would, without capturing.
//! Other methods: `405 Method Not Allowed` with `Allow: GET, HEAD`. The
//! capture and rendering run on actix's blocking thread pool, so a snapshot
//! never stalls the async workers; a panic inside them (for example in a
//! [`Capture`](crate::Capture) impl) is answered `500` and leaves the server
//! serving. Every response, errors included, carries `Cache-Control:
//! no-store`, `X-Content-Type-Options: nosniff` and a `Content-Security-Policy`
//! that allows no script, no external resource and no framing.

mod access;
mod query;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

pub use access::{Cidr, CidrError};

use crate::render::{self, Format, Links};
use crate::{Buckets, Options, Similarity, Snapshot};
use access::Access;
use query::{Defaults, Params};

/// The `Content-Security-Policy` of every response: the page is inline CSS
/// and data-URL images only, and may not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Default of [`Webstack::queue_timeout`].
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves a snapshot of every thread and task, with the default parameters
/// and no access control: guard its route yourself, or use [`Webstack`].
///
/// Register it for `GET`, e.g. `web::get().to(snapshot_handler)`; with
/// `web::route().to(snapshot_handler)` it also answers `HEAD` and `405`s the
/// other methods. Snapshots through this handler are taken one at a time
/// (process-wide); a request waits up to 10 s for the one in progress, then
/// gets `503 Service Unavailable` with `Retry-After: 1`.
pub async fn snapshot_handler(req: HttpRequest) -> HttpResponse {
    static SHARED: LazyLock<Arc<Service>> =
        LazyLock::new(|| Arc::new(Service::new(None, HANDLER_KEY)));
    serve(SHARED.clone(), req).await
}

/// A snapshot service for [`App::service`](actix_web::App::service), with
/// access control, one snapshot at a time, a minimum interval between
/// snapshots and its own defaults for the query parameters.
///
/// ```
/// use actix_web::{test, App};
/// use webstack::actix::Webstack;
///
/// # actix_web::rt::System::new().block_on(async {
/// let app = test::init_service(App::new().service(Webstack::new("/debug/webstack"))).await;
/// let req = test::TestRequest::get()
///     .uri("/debug/webstack?format=json&augment=0")
///     .peer_addr("127.0.0.1:40000".parse().unwrap())
///     .to_request();
/// let resp = test::call_service(&app, req).await;
/// assert_eq!(resp.status(), 200);
///
/// let req = test::TestRequest::get()
///     .uri("/debug/webstack")
///     .peer_addr("192.0.2.1:40000".parse().unwrap())
///     .to_request();
/// assert_eq!(test::call_service(&app, req).await.status(), 403);
/// # });
/// ```
///
/// Answers as [`snapshot_handler`] does (see the [module docs](self)), plus:
/// - `403 Forbidden` when the client address is not allowed;
/// - `429 Too Many Requests` with `Retry-After` (whole seconds, rounded up)
///   when the last snapshot started less than [`min_interval`] ago;
/// - `503 Service Unavailable` with `Retry-After: 1` when a request waited
///   [`queue_timeout`] for the snapshot in progress to finish.
///
/// [`min_interval`]: Webstack::min_interval
/// [`queue_timeout`]: Webstack::queue_timeout
#[derive(Debug)]
pub struct Webstack {
    path: String,
    service: Service,
}

impl Webstack {
    /// Serves snapshots at `path` (exact match), to loopback clients only.
    pub fn new(path: impl Into<String>) -> Self {
        let path = path.into();
        Webstack {
            service: Service::new(Some(Access::loopback()), &path),
            path,
        }
    }

    /// Also allows clients in `range`. Default allow-list: loopback
    /// (`127.0.0.0/8`, `::1`).
    pub fn allow(mut self, range: Cidr) -> Self {
        self.service
            .access
            .get_or_insert_with(Access::loopback)
            .allow
            .get_or_insert_with(Vec::new)
            .push(range);
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
        self.service
            .access
            .get_or_insert_with(Access::loopback)
            .allow = Some(ranges.into_iter().collect());
        self
    }

    /// Serves every client, whatever its address. Snapshots show argument
    /// values and source paths: only use this behind your own guard.
    /// Default: loopback only.
    pub fn allow_any(mut self) -> Self {
        self.service
            .access
            .get_or_insert_with(Access::loopback)
            .allow = None;
        self
    }

    /// Trusts the reverse proxy at `proxy`: when a request comes from it,
    /// the client address checked against the allow-list is the one it
    /// forwarded (`Forwarded: for=`, else `X-Forwarded-For`; the nearest hop
    /// that is not itself a trusted proxy). A request from a trusted proxy
    /// without a readable forwarded address is denied. Default: no proxy is
    /// trusted and both headers are ignored.
    pub fn trusted_proxy(mut self, proxy: std::net::IpAddr) -> Self {
        self.service
            .access
            .get_or_insert_with(Access::loopback)
            .trusted_proxies
            .push(proxy);
        self
    }

    /// Answers `429` with `Retry-After` to a snapshot request that comes
    /// less than `interval` after the start of the previous snapshot.
    /// Default: zero (no limit).
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.service.min_interval = interval;
        self
    }

    /// How long a request waits for the snapshot in progress before it is
    /// answered `503` with `Retry-After: 1` (snapshots are taken one at a
    /// time). Zero answers at once. Default: 10 s.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.service.queue_timeout = timeout;
        self
    }

    /// The value of `augment` when a request does not give one.
    /// Default: `true`.
    pub fn augment_default(mut self, augment: bool) -> Self {
        self.service.defaults.params.augment = augment;
        self
    }

    /// The value of `maxmem` when a request does not give one.
    /// Default: [`DEFAULT_MAXMEM`](crate::DEFAULT_MAXMEM) (64 MiB).
    pub fn maxmem_default(mut self, bytes: usize) -> Self {
        self.service.defaults.params.maxmem = bytes;
        self
    }

    /// Upper bound on `maxmem`: larger requested (and default) values are
    /// lowered to it; it is itself at least
    /// [`MIN_MAXMEM`](crate::MIN_MAXMEM). Default: none.
    pub fn maxmem_cap(mut self, bytes: usize) -> Self {
        self.service.defaults.maxmem_cap = bytes;
        self
    }

    /// The value of `similarity` when a request does not give one.
    /// Default: [`Similarity::AnyPointer`].
    pub fn similarity_default(mut self, similarity: Similarity) -> Self {
        self.service.defaults.params.similarity = similarity;
        self
    }

    /// Runs `f` on every snapshot before it is grouped and rendered, on the
    /// blocking thread: to drop routines, or redact argument values, before
    /// anyone sees them. A panic in `f` answers `500` and the service keeps
    /// serving. Default: none.
    pub fn map_snapshot(mut self, f: impl Fn(&mut Snapshot) + Send + Sync + 'static) -> Self {
        self.service.map_snapshot = Some(Arc::new(f));
        self
    }

    /// The value of `format` when a request does not give one.
    /// Default: [`Format::Html`].
    pub fn format_default(mut self, format: Format) -> Self {
        self.service.defaults.params.format = format;
        self
    }
}

impl HttpServiceFactory for Webstack {
    fn register(self, config: &mut AppService) {
        let service = Arc::new(self.service);
        let route = web::route().to(move |req: HttpRequest| serve(service.clone(), req));
        web::resource(self.path).route(route).register(config);
    }
}

type MapSnapshot = Arc<dyn Fn(&mut Snapshot) + Send + Sync>;

/// The key under which [`snapshot_handler`] keeps its state (no `Webstack`
/// path can be empty and also match a request).
const HANDLER_KEY: &str = "";

/// The turn (one snapshot at a time) and the start of the last snapshot of
/// a service, shared by every worker: actix builds the app once per worker
/// thread, so state kept in one `Webstack` value would be per worker, and
/// `min_interval` or "one at a time" would not hold for the process. Keyed by
/// the service's path.
fn shared_state(key: &str) -> (Arc<Semaphore>, Arc<Mutex<Option<Instant>>>) {
    type State = (Arc<Semaphore>, Arc<Mutex<Option<Instant>>>);
    static STATES: LazyLock<Mutex<HashMap<String, State>>> = LazyLock::new(Default::default);
    STATES
        .lock()
        .entry(key.to_owned())
        .or_insert_with(|| (Arc::new(Semaphore::new(1)), Arc::default()))
        .clone()
}

/// Configuration and state shared by the requests of one service.
struct Service {
    /// `None`: no access control ([`snapshot_handler`]).
    access: Option<Access>,
    defaults: Defaults,
    min_interval: Duration,
    queue_timeout: Duration,
    /// One permit: one snapshot at a time.
    turn: Arc<Semaphore>,
    last_start: Arc<Mutex<Option<Instant>>>,
    map_snapshot: Option<MapSnapshot>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("access", &self.access)
            .field("defaults", &self.defaults)
            .field("min_interval", &self.min_interval)
            .field("queue_timeout", &self.queue_timeout)
            .field("map_snapshot", &self.map_snapshot.as_ref().map(|_| "Fn"))
            .finish_non_exhaustive()
    }
}

impl Service {
    fn new(access: Option<Access>, key: &str) -> Service {
        let (turn, last_start) = shared_state(key);
        Service {
            access,
            defaults: Defaults::default(),
            min_interval: Duration::ZERO,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            turn,
            last_start,
            map_snapshot: None,
        }
    }

    /// Time left before the next snapshot may start, if any.
    fn too_soon(&self, now: Instant) -> Option<Duration> {
        self.wait_left(*self.last_start.lock(), now)
    }

    /// Records the start of a snapshot unless it is too soon.
    fn start(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut last = self.last_start.lock();
        if let Some(wait) = self.wait_left(*last, now) {
            return Err(wait);
        }
        *last = Some(now);
        Ok(())
    }

    fn wait_left(&self, last_start: Option<Instant>, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(last_start?);
        (elapsed < self.min_interval).then(|| self.min_interval - elapsed)
    }
}

async fn serve(service: Arc<Service>, req: HttpRequest) -> HttpResponse {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut resp = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed; allowed: GET, HEAD",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
    };
    if let Some(access) = &service.access {
        if !access.allows(&req) {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden: client address not allowed",
            );
        }
    }
    let params = match query::parse(req.query_string(), &service.defaults) {
        Ok(params) => params,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    if head {
        return respond(
            StatusCode::OK,
            params.format.content_type(),
            actix_web::body::None::new(),
        );
    }
    if let Some(wait) = service.too_soon(Instant::now()) {
        return too_many(wait);
    }
    let permit = match actix_web::rt::time::timeout(
        service.queue_timeout,
        service.turn.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(permit)) => permit,
        // Timed out, or (never: it is not closed) the semaphore was closed.
        _ => {
            let mut resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: another snapshot is in progress; retry shortly",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
    };
    if let Err(wait) = service.start() {
        return too_many(wait);
    }
    // The worker thread's bucket (the thread serving this request) is shown
    // first.
    let options = Options::default()
        .maxmem(params.maxmem)
        .augment(params.augment)
        .serving_thread();
    let base_path = req.path().to_owned();
    let map_snapshot = service.map_snapshot.clone();
    let produced = web::block(move || {
        // The permit moves here so that a client hanging up (which drops the
        // handler future) does not let a second capture start before this one
        // ends.
        let _permit = permit;
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            produce(&params, &options, base_path, map_snapshot.as_deref())
        }))
    })
    .await;
    match produced {
        Ok(Ok(Ok(body))) => respond(
            StatusCode::OK,
            params.format.content_type(),
            ChunkedBody::new(body),
        ),
        Ok(Ok(Err(message))) => error(StatusCode::INTERNAL_SERVER_ERROR, &message),
        Ok(Err(panic)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("snapshot failed: panicked: {}", panic_message(&*panic)),
        ),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "snapshot failed: the blocking thread pool is gone",
        ),
    }
}

/// Captures, groups and renders; runs on a blocking thread.
fn produce(
    params: &Params,
    options: &Options,
    base_path: String,
    map_snapshot: Option<&(dyn Fn(&mut Snapshot) + Send + Sync)>,
) -> Result<Vec<Vec<u8>>, String> {
    let mut snapshot = Snapshot::capture(options);
    if let Some(map) = map_snapshot {
        map(&mut snapshot);
    }
    let buckets = Buckets::aggregate(&snapshot, params.similarity);
    let links = Links {
        base_path,
        augment: params.augment,
        maxmem: params.maxmem,
        similarity: params.similarity,
        fold: true,
    };
    render::render_chunks(&snapshot, &buckets, params.format, &links)
        .map_err(|e| format!("snapshot failed: rendering: {e}"))
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

fn too_many(wait: Duration) -> HttpResponse {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1);
    let mut resp = error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many snapshots; retry in {secs} s"),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// A one-line plain-text error.
fn error(status: StatusCode, message: &str) -> HttpResponse {
    // Messages may echo request text: keep them to one line.
    let line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    respond(status, "text/plain; charset=utf-8", line + "\n")
}

/// A rendered page sent piece by piece, as [`render::render_chunks`] made it.
struct ChunkedBody {
    chunks: std::collections::VecDeque<Vec<u8>>,
    len: u64,
}

impl ChunkedBody {
    fn new(chunks: Vec<Vec<u8>>) -> Self {
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        ChunkedBody {
            chunks: chunks.into(),
            len,
        }
    }
}

impl actix_web::body::MessageBody for ChunkedBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> actix_web::body::BodySize {
        actix_web::body::BodySize::Sized(self.len)
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        let this = self.get_mut();
        std::task::Poll::Ready(this.chunks.pop_front().map(|c| Ok(web::Bytes::from(c))))
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl actix_web::body::MessageBody + 'static,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .body(body)
}
