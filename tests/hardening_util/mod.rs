//! Helpers shared by the soak and hardening tests: a watchdog that aborts a
//! hung test, a real actix server on 127.0.0.1:0, a tiny HTTP/1.1 client over
//! `TcpStream`, a small random number generator, and the checks every served
//! page must pass (HTML well formed and script-free, JSON following the
//! documented schema with consistent totals, text non-empty).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer};
use webstack::actix::Webstack;

/// Aborts the whole process with a message unless dropped within `limit`:
/// a hung test must fail CI, not stall it.
#[must_use = "the watchdog is disarmed when dropped"]
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

pub fn watchdog(what: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("watchdog-{what}"))
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: {what} did not finish within {limit:?}; aborting");
                std::process::abort();
            }
        })
        .expect("spawn watchdog");
    Watchdog { _disarm: tx }
}

/// xorshift64*: enough randomness for picking parameters, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Serves `make()` on 127.0.0.1 (port chosen by the OS) from a background
/// thread running its own actix system with `workers` workers.
pub fn start_server(
    workers: usize,
    make: impl Fn() -> Webstack + Send + Clone + 'static,
) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("hardening-server".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || App::new().service(make()))
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
    let mut stream = connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
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

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
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
    response.body = if response
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

/// Elements without an end tag in HTML.
const VOID: [&str; 6] = ["meta", "br", "img", "hr", "input", "link"];

/// Checks that `html` is a whole page (doctype to `</html>`), contains no
/// `<script` in any letter case, and that its tags nest: every start tag is
/// closed by the matching end tag, so program data that broke out of its
/// escaping (`<b>`, `</td>`) would be caught.
pub fn check_html(html: &str) -> Result<(), String> {
    if !html.starts_with("<!DOCTYPE html>") {
        return Err(format!("does not start with a doctype: {:?}", head(html)));
    }
    if !html.trim_end().ends_with("</html>") {
        return Err(format!("does not end with </html>: {:?}", tail(html)));
    }
    if html.to_ascii_lowercase().contains("<script") {
        return Err("contains <script".into());
    }
    if let Some(c) = html
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(format!("contains the control character {c:?}"));
    }
    let mut open: Vec<&str> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest
            .find('>')
            .ok_or_else(|| "unterminated tag".to_owned())?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            match open.pop() {
                Some(top) if top == name => {}
                top => return Err(format!("</{name}> closes {top:?}")),
            }
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("malformed tag <{}>", head(tag)));
        }
        if name == "style" {
            let close = rest
                .find("</style>")
                .ok_or_else(|| "unclosed <style>".to_owned())?;
            rest = &rest[close + "</style>".len()..];
            continue;
        }
        if !VOID.contains(&name) && !tag.ends_with('/') {
            open.push(name);
        }
    }
    if !open.is_empty() {
        return Err(format!("unclosed tags: {open:?}"));
    }
    Ok(())
}

fn head(s: &str) -> &str {
    let end = s.char_indices().nth(80).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

fn tail(s: &str) -> &str {
    let chars = s.chars().count();
    let start = s
        .char_indices()
        .nth(chars.saturating_sub(80))
        .map_or(0, |(i, _)| i);
    &s[start..]
}

/// What a JSON snapshot document says, once checked against the schema.
#[derive(Debug, Default)]
pub struct JsonSummary {
    pub threads: u64,
    pub tasks: u64,
    pub buckets: u64,
    pub left_out: u64,
    /// Every member name, with its bucket's kind (`thread` or `task`).
    pub names: Vec<(String, String)>,
}

impl JsonSummary {
    pub fn has_thread(&self, name: &str) -> bool {
        self.names.iter().any(|(k, n)| k == "thread" && n == name)
    }
}

fn field<'a>(v: &'a serde_json::Value, path: &str) -> Result<&'a serde_json::Value, String> {
    path.split('.').try_fold(v, |v, key| {
        v.get(key).ok_or_else(|| format!("missing field {path}"))
    })
}

fn uint(v: &serde_json::Value, path: &str) -> Result<u64, String> {
    field(v, path)?
        .as_u64()
        .ok_or_else(|| format!("{path} is not an unsigned integer"))
}

fn string<'a>(v: &'a serde_json::Value, path: &str) -> Result<&'a str, String> {
    field(v, path)?
        .as_str()
        .ok_or_else(|| format!("{path} is not a string"))
}

fn array<'a>(v: &'a serde_json::Value, path: &str) -> Result<&'a Vec<serde_json::Value>, String> {
    field(v, path)?
        .as_array()
        .ok_or_else(|| format!("{path} is not an array"))
}

/// Parses `body` and checks it against the schema documented in
/// `webstack::render::json` (version, similarity, totals, buckets with
/// count/kind/state/ids/names/frames), and that it is consistent: the bucket
/// counts add up to the captured threads and tasks, each bucket lists
/// `count` ids and names, and the left-out total is the sum of its parts.
pub fn check_json(body: &str) -> Result<JsonSummary, String> {
    let doc: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if uint(&doc, "version")? != u64::from(webstack::JSON_VERSION) {
        return Err("wrong version".into());
    }
    let similarity = string(&doc, "similarity")?;
    if !webstack::Similarity::ALL
        .iter()
        .any(|s| s.as_str() == similarity)
    {
        return Err(format!("unknown similarity {similarity:?}"));
    }
    let mut summary = JsonSummary {
        threads: uint(&doc, "totals.threads")?,
        tasks: uint(&doc, "totals.tasks")?,
        buckets: uint(&doc, "totals.buckets")?,
        left_out: uint(&doc, "totals.left_out")?,
        names: Vec::new(),
    };
    let parts = uint(&doc, "totals.left_out_threads")? + uint(&doc, "totals.left_out_tasks")?;
    if parts != summary.left_out {
        return Err(format!(
            "left_out {} but its parts add to {parts}",
            summary.left_out
        ));
    }
    let buckets = array(&doc, "buckets")?;
    if buckets.len() as u64 != summary.buckets {
        return Err(format!(
            "totals.buckets {} but {} buckets",
            summary.buckets,
            buckets.len()
        ));
    }
    let (mut threads, mut tasks) = (0, 0);
    for b in buckets {
        let count = uint(b, "count")?;
        let kind = string(b, "kind")?;
        string(b, "state")?;
        match kind {
            "thread" => threads += count,
            "task" => tasks += count,
            other => return Err(format!("unknown kind {other:?}")),
        }
        let ids = array(b, "ids")?;
        let names = array(b, "names")?;
        if ids.len() as u64 != count || names.len() as u64 != count {
            return Err(format!(
                "bucket of {count} lists {} ids and {} names",
                ids.len(),
                names.len()
            ));
        }
        if ids.iter().any(|id| id.as_u64().is_none()) {
            return Err("an id is not an integer".into());
        }
        for name in names {
            let name = name.as_str().ok_or("a name is not a string")?;
            summary.names.push((kind.to_owned(), name.to_owned()));
        }
        for frame in array(b, "frames")? {
            string(frame, "function")?;
            string(frame, "file")?;
            uint(frame, "line")?;
            for arg in array(frame, "args")? {
                string(arg, "name")?;
                string(arg, "type")?;
                string(arg, "value")?;
            }
        }
    }
    if (threads, tasks) != (summary.threads, summary.tasks) {
        return Err(format!(
            "buckets hold {threads} threads and {tasks} tasks, totals say {} and {}",
            summary.threads, summary.tasks
        ));
    }
    Ok(summary)
}

/// Checks the text form: non-empty, starting with its header line, whose
/// counts are numbers.
pub fn check_text(text: &str) -> Result<(), String> {
    let first = text.lines().next().unwrap_or_default();
    if !first.starts_with("webstack ") || !first.contains(" left out") {
        return Err(format!("unexpected first line {:?}", head(first)));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(format!("contains the control character {c:?}"));
    }
    Ok(())
}
