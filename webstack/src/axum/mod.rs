//! Serving snapshots with axum, or any tower stack (feature `axum`): an
//! adapter over [`crate::serve`], whose docs list the query parameters
//! and every answer. It answers exactly as the actix adapter
//! (`webstack::actix`) does: the same statuses, headers and bodies.
//!
//! ```toml
//! webstack = { version = "0.1", default-features = false, features = ["axum"] }
//! ```
//!
//! pulls in no actix. Three ways in:
//!
//! - [`router`], the defaults (loopback clients only) at one path:
//!
//!   ```no_run
//!   use std::net::SocketAddr;
//!
//!   # async fn run() -> std::io::Result<()> {
//!   let app = axum::Router::new()
//!       .route("/", axum::routing::get(|| async { "hello" }))
//!       .merge(webstack::axum::router("/debug/webstack"));
//!   let listener = tokio::net::TcpListener::bind("127.0.0.1:6060").await?;
//!   // The allow-list reads the client address from `ConnectInfo`.
//!   axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//!   # }
//!   ```
//!
//! - [`Webstack`] (the [`serve::Service`] builder) turned into a
//!   [`Router`] with `Router::from`, for access control, rate limiting and
//!   other defaults:
//!
//!   ```
//!   use std::time::Duration;
//!   use webstack::axum::Webstack;
//!
//!   let app = axum::Router::from(
//!       Webstack::new("/debug/webstack")
//!           .allow_tailscale()
//!           .trusted_proxy("127.0.0.1".parse().unwrap())
//!           .min_interval(Duration::from_secs(2))
//!           .defaults(webstack::View::default().augment(false)),
//!   );
//!   # let _: axum::Router = app;
//!   ```
//!
//! - [`SnapshotService`], the same as a tower [`Service`](tower_service::Service),
//!   for `Router::route_service` on a router with state, or any other tower
//!   stack.
//!
//! # The client address
//!
//! The allow-list checks the peer address that axum's
//! [`ConnectInfo<SocketAddr>`](::axum::extract::ConnectInfo) extension
//! carries: serve the app with
//! [`into_make_service_with_connect_info::<SocketAddr>()`](::axum::Router::into_make_service_with_connect_info)
//! (or add the extension yourself, e.g. with
//! [`MockConnectInfo`] in
//! tests). Without it the peer is unknown, and an unknown peer is denied
//! (`403 Forbidden`) by every allow-list: the service fails closed. Only
//! [`Service::allow_any`] serves such requests.
//!
//! # The path
//!
//! The router serves exactly the path given to [`Webstack::new`], taken
//! literally (`{` and `}` are not route parameters). A path that does not
//! start with `/` matches no request, so its router serves nothing. axum
//! refuses segments starting with `:` or `*` (its 0.7 syntax) in routes
//! unless the router was built `without_v07_checks`; the routers made
//! here are, but a router they are merged into may not be.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::axum::body::Bytes;
use ::axum::extract::connect_info::MockConnectInfo;
use ::axum::extract::ConnectInfo;
use ::axum::http::{self, HeaderName, HeaderValue, StatusCode};
use ::axum::Router;

use crate::serve::{self, Body, Service, Tokio};

/// The snapshot service builder, [`serve::Service`], under the name the
/// actix adapter uses; turn it into a [`Router`] with `Router::from` or
/// into a [`SnapshotService`].
pub type Webstack = Service;

/// A [`Router`] serving snapshots at `path` with every default: loopback
/// clients only (see [the client address](self#the-client-address)), one
/// snapshot at a time, no minimum interval. `Router::from(Webstack::new(path))`.
pub fn router(path: impl Into<String>) -> Router {
    Router::from(Service::new(path))
}

impl From<Service> for Router {
    /// A router serving `service` at its path (any method: `GET` and `HEAD`
    /// are served, the others answered `405`).
    fn from(service: Service) -> Router {
        let mut router = Router::new().without_v07_checks();
        let page = SnapshotService::from(service);
        #[cfg(feature = "pprof")]
        if let Some(route) = page.service.goroutine_path().and_then(literal_route) {
            let profile = SnapshotService {
                goroutine: true,
                ..page.clone()
            };
            router = router.route_service(&route, profile);
        }
        if let Some(route) = literal_route(page.service.path()) {
            router = router.route_service(&route, page);
        }
        router
    }
}

/// `path` as a route that matches it literally; `None` when no request
/// path can match it.
fn literal_route(path: &str) -> Option<String> {
    path.starts_with('/')
        .then(|| path.replace('{', "{{").replace('}', "}}"))
}

/// A [`Service`] as a tower service, answering every request it is given
/// (whatever its path) as [`Service::respond`] does. Cheap to clone: the
/// clones share the service. (The [`Router`] made from a service with a
/// [goroutine profile](Service::goroutine_profile) also routes that path to
/// [`Service::respond_goroutine`].)
///
/// ```
/// use axum::routing::get;
/// use webstack::axum::{SnapshotService, Webstack};
///
/// #[derive(Clone)]
/// struct AppState;
///
/// let app: axum::Router<AppState> = axum::Router::new()
///     .route("/", get(|| async { "hello" }))
///     .route_service("/debug/webstack", SnapshotService::from(Webstack::new("/debug/webstack")));
/// # let _ = app.with_state::<()>(AppState);
/// ```
#[derive(Clone, Debug)]
pub struct SnapshotService {
    service: Arc<Service>,
    /// Answers as [`Service::respond_goroutine`] rather than the page.
    goroutine: bool,
}

impl From<Service> for SnapshotService {
    fn from(service: Service) -> SnapshotService {
        SnapshotService {
            service: Arc::new(service),
            goroutine: false,
        }
    }
}

impl<B> tower_service::Service<http::Request<B>> for SnapshotService {
    type Response = http::Response<::axum::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The body is never read; the future keeps only the head.
        let (parts, _) = request.into_parts();
        let service = self.service.clone();
        let goroutine = self.goroutine;
        Box::pin(async move { Ok(respond(&service, &parts, goroutine).await) })
    }
}

async fn respond(
    service: &Service,
    parts: &http::request::Parts,
    goroutine: bool,
) -> http::Response<::axum::body::Body> {
    // As axum's `ConnectInfo` extractor reads it: the real one, else a mock.
    let extensions = &parts.extensions;
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| {
            let MockConnectInfo(addr) = extensions.get::<MockConnectInfo<SocketAddr>>()?;
            Some(addr.ip())
        });
    let request = serve::Request::new(parts.method.as_str(), parts.uri.query().unwrap_or(""))
        .peer(peer)
        .headers(
            parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes())),
        );
    #[cfg(feature = "pprof")]
    let response = if goroutine {
        service.respond_goroutine(request, &Tokio).await
    } else {
        service.respond(request, &Tokio).await
    };
    #[cfg(not(feature = "pprof"))]
    let response = {
        let _ = goroutine;
        service.respond(request, &Tokio).await
    };
    let body = match response.body {
        Body::None => ::axum::body::Body::empty(),
        Body::Chunks(chunks) => ::axum::body::Body::new(Chunked::new(chunks)),
    };
    let mut answer = http::Response::new(body);
    *answer.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &response.headers {
        // The core's names are lower-case tokens and its values visible
        // ASCII; were one not, it is left out rather than sent broken.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_lowercase(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            answer.headers_mut().append(name, value);
        }
    }
    answer
}

/// A body sent piece by piece, as the core made it, with its length known
/// (so it is sent with `Content-Length`).
struct Chunked(crate::serve::Pieces);

impl Chunked {
    fn new(chunks: Vec<Vec<u8>>) -> Self {
        Chunked(crate::serve::Pieces::new(chunks))
    }
}

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let piece = self.get_mut().0.next_piece();
        Poll::Ready(piece.map(|c| Ok(http_body::Frame::data(Bytes::from(c)))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.remaining())
    }
}

#[cfg(test)]
mod tests {
    use tower_service::Service as _;

    use super::*;

    async fn status(mut router: Router, method: &str, uri: &str) -> u16 {
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(::axum::body::Body::empty())
            .unwrap();
        let response = router.call(request).await.unwrap();
        response.status().as_u16()
    }

    /// Without `ConnectInfo` the peer is unknown and the service fails
    /// closed; with it, loopback is served.
    #[tokio::test]
    async fn without_connect_info_every_allow_list_denies() {
        let path = "/axum-connect-info";
        assert_eq!(status(router(path), "HEAD", path).await, 403);
        let tailscale = Service::new(path).allow_tailscale();
        assert_eq!(status(Router::from(tailscale), "HEAD", path).await, 403);
        let peer = |ip: &str| MockConnectInfo(SocketAddr::new(ip.parse().unwrap(), 40000));
        let with = router(path).layer(peer("127.0.0.1"));
        assert_eq!(status(with, "HEAD", path).await, 200);
        let with = router(path).layer(peer("192.0.2.1"));
        assert_eq!(status(with, "HEAD", path).await, 403);
        let any = Router::from(Service::new(path).allow_any());
        assert_eq!(status(any, "HEAD", path).await, 200);
    }

    /// Paths axum would refuse or read as parameters are taken literally,
    /// and a path no request can have serves nothing; none panics.
    #[tokio::test]
    async fn every_path_is_literal_and_none_panics() {
        let served = |path: &str| Router::from(Service::new(path).allow_any());
        assert_eq!(status(served("/a/{id}"), "HEAD", "/a/{id}").await, 200);
        assert_eq!(status(served("/a/{id}"), "HEAD", "/a/%7Bid%7D").await, 404);
        assert_eq!(status(served("/a/{id}"), "HEAD", "/a/7").await, 404);
        assert_eq!(
            status(served("/a/:id/*rest"), "HEAD", "/a/:id/*rest").await,
            200
        );
        assert_eq!(status(served("/a/:id/*rest"), "HEAD", "/a/7/x").await, 404);
        assert_eq!(status(served(""), "HEAD", "/").await, 404);
        assert_eq!(status(served("relative"), "HEAD", "/relative").await, 404);
        assert_eq!(status(served("/"), "POST", "/").await, 405);
    }
}
