//! Serving snapshots with actix-web (feature `actix`, on by default): an
//! adapter over [`crate::serve`], whose docs list the query
//! parameters and every answer.
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
//!               .defaults(webstack::View::default().augment(false))
//!               .maxmem_cap(16 << 20),
//!       )
//!   })
//!   .bind("0.0.0.0:6060")?
//!   .run()
//!   .await
//!   # }
//!   ```

use std::sync::Arc;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::serve::{self, Body, Service, Tokio};

/// Serves a snapshot of every thread and task, with the default parameters
/// and no access control: guard its route yourself, or use [`Webstack`].
///
/// Register it for `GET`, e.g. `web::get().to(snapshot_handler)`; with
/// `web::route().to(snapshot_handler)` it also answers `HEAD` and `405`s the
/// other methods. Snapshots through this handler are taken one at a time
/// (process-wide); a request waits up to 10 s for the one in progress, then
/// gets `503 Service Unavailable` with `Retry-After: 1`.
pub async fn snapshot_handler(req: HttpRequest) -> HttpResponse {
    // No `Webstack` path can be empty and also match a request: this key is
    // the handler's own.
    static SHARED: crate::fork::Lazy<Service> =
        crate::fork::Lazy::new(|| Service::new("").allow_any());
    respond(&SHARED, &req).await
}

/// A snapshot service for [`App::service`](actix_web::App::service), with
/// access control, one snapshot at a time, a minimum interval between
/// snapshots and its own defaults for the query parameters: a
/// [`serve::Service`], whose methods set them.
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
/// It serves the exact path given to [`Webstack::new`] and answers as
/// [`snapshot_handler`] does, plus `403`, `429` and `503` as the
/// [`serve`] docs describe.
///
/// With [`goroutine_profile`](Service::goroutine_profile) (feature `pprof`,
/// on by default) it also serves Go's goroutine profile at
/// `/debug/pprof/goroutine`, for fleet profilers, with the same access
/// control and the same one-snapshot-at-a-time turn:
///
/// ```no_run
/// # use actix_web::App;
/// # use webstack::actix::Webstack;
/// let app = App::new().service(
///     Webstack::new("/debug/webstack")
///         .allow("10.0.0.0/8".parse().unwrap()) // the scraper's network
///         .goroutine_profile(),
/// );
/// # let _ = app;
/// ```
pub type Webstack = Service;

impl HttpServiceFactory for Service {
    fn register(self, config: &mut AppService) {
        let path = self.path().to_owned();
        #[cfg(feature = "pprof")]
        let goroutine_path = self.goroutine_path().map(str::to_owned);
        let service = Arc::new(self);
        #[cfg(feature = "pprof")]
        if let Some(goroutine_path) = goroutine_path {
            let service = service.clone();
            let route = web::route().to(move |req: HttpRequest| {
                let service = service.clone();
                async move { send(service.respond_goroutine(request(&req), &Tokio).await) }
            });
            web::resource(goroutine_path).route(route).register(config);
        }
        let route = web::route().to(move |req: HttpRequest| {
            let service = service.clone();
            async move { respond(&service, &req).await }
        });
        web::resource(path).route(route).register(config);
    }
}

async fn respond(service: &Service, req: &HttpRequest) -> HttpResponse {
    send(service.respond(request(req), &Tokio).await)
}

/// The core's view of `req`.
fn request(req: &HttpRequest) -> serve::Request<'_> {
    serve::Request::new(req.method().as_str(), req.query_string())
        .peer(req.peer_addr().map(|addr| addr.ip()))
        .headers(
            req.headers()
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes())),
        )
}

/// `response` as actix sends it.
fn send(response: serve::Response) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    for (name, value) in &response.headers {
        builder.insert_header((*name, value.as_str()));
    }
    match response.body {
        Body::None => builder.body(actix_web::body::None::new()),
        Body::Chunks(chunks) => builder.body(Chunked::new(chunks)),
    }
}

/// A body sent piece by piece, as the core made it.
struct Chunked(crate::serve::Pieces);

impl Chunked {
    fn new(chunks: Vec<Vec<u8>>) -> Self {
        Chunked(crate::serve::Pieces::new(chunks))
    }
}

impl MessageBody for Chunked {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.0.remaining())
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        let this = self.get_mut();
        std::task::Poll::Ready(this.0.next_piece().map(|c| Ok(web::Bytes::from(c))))
    }
}
