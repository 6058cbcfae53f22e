//! Real actix and axum servers on 127.0.0.1:0 and a tiny HTTP/1.1 client
//! over `TcpStream`, for the tests that go through the network.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer};
use webstack::actix::Webstack;

/// Serves `make()` on 127.0.0.1 (port chosen by the OS) from a background
/// thread running its own actix system with `workers` workers.
pub fn start_server(
    workers: usize,
    make: impl Fn() -> Webstack + Send + Clone + 'static,
) -> SocketAddr {
    start_server_with(workers, move || vec![make()])
}

/// Serves every service of `make()` as [`start_server`] does; actix calls
/// `make` once per worker.
pub fn start_server_with(
    workers: usize,
    make: impl Fn() -> Vec<Webstack> + Send + Clone + 'static,
) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("test-server".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    make()
                        .into_iter()
                        .fold(App::new(), |app, service| app.service(service))
                })
                .workers(workers)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind 127.0.0.1:0");
                tx.send(server.addrs()[0]).unwrap();
                server.run().await
            })
        })
        .expect("spawn server thread");
    rx.recv_timeout(Duration::from_secs(30))
        .expect("server started")
}

/// Serves `router` on 127.0.0.1 (port chosen by the OS) from a background
/// thread running a one-thread tokio runtime, with the peer address as
/// `ConnectInfo`, as an application must for the allow-list to see it.
pub fn start_axum_server(router: impl FnOnce() -> axum::Router + Send + 'static) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("test-axum-server".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = router().into_make_service_with_connect_info::<SocketAddr>();
                axum::serve(listener, app).await
            })
        })
        .expect("spawn server thread");
    rx.recv_timeout(Duration::from_secs(30))
        .expect("server started")
}

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }
}

/// `GET path` over a fresh connection (`Connection: close`), with a read
/// timeout so that a server that never answers fails the test.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    request(addr, "GET", path, &[])
}

/// `method path` with `headers` (each `name: value` line sent as is) over
/// a fresh connection, as [`get`] does. The answer to `HEAD` has no body,
/// whatever its `Content-Length` says.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut stream = connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

/// Snapshots with `augment=1` signal every thread of the process, client
/// threads included, and an interrupted `connect` is not restarted: retry it
/// (a few times) on a new socket, as `read_to_end` and `write_all` already
/// do for their calls.
pub fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut attempts = 0;
    loop {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && attempts < 10 => {
                attempts += 1;
            }
            other => return other,
        }
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

fn parse_response(raw: &[u8], head_request: bool) -> std::io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid(format!("no end of headers in {} bytes", raw.len())))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| invalid(e.to_string()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    response.body = if head_request {
        if !rest.is_empty() {
            return Err(invalid(format!("{} bytes after a HEAD answer", rest.len())));
        }
        Vec::new()
    } else if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().map_err(|_| invalid("content-length".into()))?;
        if rest.len() != len {
            return Err(invalid(format!(
                "body of {} bytes, content-length {len}",
                rest.len()
            )));
        }
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn dechunk(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("truncated chunk size".into()))?;
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .ok_or_else(|| invalid("bad chunk size".into()))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(invalid("truncated chunk".into()));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Retries `get` until it answers, for at most `limit`: used right after
/// faults, where the only acceptable outcome is an answer.
pub fn get_within(addr: SocketAddr, path: &str, limit: Duration) -> Response {
    let start = Instant::now();
    loop {
        match get(addr, path) {
            Ok(response) => return response,
            Err(e) if start.elapsed() < limit => {
                eprintln!("retrying {path}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no answer to {path} within {limit:?}: {e}"),
        }
    }
}
