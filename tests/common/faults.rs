//! A fault-injecting loopback proxy between stagehand and Azurite (HTTP/1.1), shared by
//! the tests that check what stagehand does when the network or the service misbehaves:
//! answers lost, cut short or reset mid-body, requests never delivered, 500/503/429
//! `ServerBusy`, stalls. It also counts the body bytes that pass each way, and can
//! throttle them, so a test can stop the agent half-way through a transfer and measure
//! what its re-run moves.
//!
//! A rule decides the fault of each request from its first line (`GET /devstoreaccount1/
//! box/a.bin HTTP/1.1`); every connection to Azurite carries one request.

use super::azurite::ACCOUNT;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with one request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// Passes it on and brings the answer back.
    None,
    /// Closes the connection without passing the request on: the service never saw it.
    DropRequest,
    /// Passes it on, then closes the connection without the answer: the service acted,
    /// the client cannot know.
    DropAnswer,
    /// Passes it on and brings back only the first half of the answer's body, then
    /// closes the connection (a truncated body).
    CutAnswer,
    /// As `CutAnswer`, but the connection is reset (RST), not closed.
    ResetMidBody,
    /// Answers this status with the error code `ServerBusy` (503, 500, 429) without
    /// passing the request on.
    Status(u16),
    /// Holds the request, answering nothing, for this long, then closes.
    Stall(Duration),
    /// Passes it on and holds the answer this long before its headers (a slow
    /// service): nothing is lost, only late.
    Delay(Duration),
    /// Passes it on, brings back the headers and half the body, holds the rest this
    /// long, then sends it.
    DelayMidBody(Duration),
    /// Answers this status (429, 503) with `Retry-After: N` seconds, without passing the
    /// request on (a throttling service).
    Throttle(u16, u64),
}

/// What the proxy moved and did.
#[derive(Default)]
pub struct Counters {
    /// Faults injected.
    pub injected: AtomicUsize,
    /// Requests seen.
    pub requests: AtomicUsize,
    /// Body bytes of answers written to the client.
    pub answered: AtomicU64,
    /// Body bytes of requests read from the client.
    pub received: AtomicU64,
}

/// A running proxy; it lives as long as the test (its threads end with the process).
pub struct Proxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// What it moved and did.
    pub count: Arc<Counters>,
}

/// The rule: the fault for a request, from its first line.
pub type Rule = Arc<Mutex<dyn FnMut(&str) -> Fault + Send>>;

/// Paces the body bytes of every connection together to `rate` bytes a second.
struct Limiter {
    rate: u64,
    start: Instant,
    moved: AtomicU64,
}

impl Limiter {
    fn take(&self, n: usize) {
        let moved = self.moved.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        let due = self.start + Duration::from_secs_f64(moved as f64 / self.rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

struct Shared {
    upstream: u16,
    /// Keeps client connections open between requests, closing one idle this long (as
    /// Azurite's own server does after 5 s): a client reusing a pooled connection may
    /// send on one the proxy is closing.
    keep_alive: Option<Duration>,
    rule: Rule,
    count: Arc<Counters>,
    limit: Option<Limiter>,
}

/// Bytes per piece written or read through the limiter.
const PIECE: usize = 64 << 10;

impl Proxy {
    /// A proxy in front of Azurite on `upstream`, applying `rule`.
    pub fn start(upstream: u16, rule: impl FnMut(&str) -> Fault + Send + 'static) -> Proxy {
        Self::launch(upstream, None, None, rule)
    }

    /// As [`Proxy::start`], keeping client connections alive between requests and
    /// closing one idle for `idle`, as a real service's front end does.
    pub fn keep_alive(
        upstream: u16,
        idle: Duration,
        rule: impl FnMut(&str) -> Fault + Send + 'static,
    ) -> Proxy {
        Self::launch(upstream, None, Some(idle), rule)
    }

    /// As [`Proxy::start`], moving body bytes (both ways together) at `rate` bytes a
    /// second at most.
    pub fn throttled(
        upstream: u16,
        rate: u64,
        rule: impl FnMut(&str) -> Fault + Send + 'static,
    ) -> Proxy {
        Self::launch(upstream, Some(rate), None, rule)
    }

    fn launch(
        upstream: u16,
        rate: Option<u64>,
        keep_alive: Option<Duration>,
        rule: impl FnMut(&str) -> Fault + Send + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            upstream,
            keep_alive,
            rule: Arc::new(Mutex::new(rule)),
            count: count.clone(),
            limit: rate.map(|rate| Limiter {
                rate,
                start: Instant::now(),
                moved: AtomicU64::new(0),
            }),
        });
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(client, &shared));
            }
        });
        Proxy { port, count }
    }

    /// The blob endpoint through the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// Writes a workspace (`workspace.yaml` in `s`, with the key in `key.txt`) whose
    /// default datastore `az` is container `box` reached through this proxy.
    pub fn workspace(&self, s: &super::Scratch) -> std::path::PathBuf {
        s.write("key.txt", super::azurite::KEY);
        s.write(
            "workspace.yaml",
            &format!(
                r#"default_datastore: az
datastores:
  az:
    type: azure_blob
    account_name: devstoreaccount1
    container_name: box
    endpoint: {}
    credentials: {{account_key: {{file: key.txt}}}}
"#,
                self.endpoint()
            ),
        )
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.count.injected.load(Ordering::SeqCst)
    }

    /// Answer body bytes sent to the client so far.
    pub fn answered(&self) -> u64 {
        self.count.answered.load(Ordering::SeqCst)
    }

    /// Request body bytes read from the client so far.
    pub fn received(&self) -> u64 {
        self.count.received.load(Ordering::SeqCst)
    }
}

/// A rule that applies `fault` to the first request whose first line `matches`.
pub fn first(
    matches: impl Fn(&str) -> bool + Send + 'static,
    fault: Fault,
) -> impl FnMut(&str) -> Fault + Send {
    let mut done = false;
    move |line| {
        if !done && matches(line) {
            done = true;
            fault
        } else {
            Fault::None
        }
    }
}

/// A rule that applies `fault` to a share `rate` (0..1) of the requests whose first
/// line `matches`, drawn from a generator seeded with `seed` (a failing trial can be
/// replayed).
pub fn at_rate(
    rate: f64,
    seed: u64,
    matches: impl Fn(&str) -> bool + Send + 'static,
    fault: Fault,
) -> impl FnMut(&str) -> Fault + Send {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    move |line| {
        // xorshift64*: enough randomness for picking requests.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let draw = (state.wrapping_mul(2685821657736338717) >> 11) as f64 / (1u64 << 53) as f64;
        if matches(line) && draw < rate {
            fault
        } else {
            Fault::None
        }
    }
}

/// Serves one client connection, request by request, until either side closes.
fn serve(mut client: TcpStream, sh: &Shared) {
    if let Some(idle) = sh.keep_alive {
        let _ = client.set_read_timeout(Some(idle));
    }
    while let Some((head, body)) = read_request(&mut client, sh) {
        sh.count.requests.fetch_add(1, Ordering::SeqCst);
        let first = head.lines().next().unwrap_or("").to_string();
        let fault = (sh.rule.lock().unwrap())(&first);
        if fault != Fault::None {
            sh.count.injected.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            Fault::DropRequest => return,
            Fault::Stall(d) => {
                std::thread::sleep(d);
                return;
            }
            Fault::Status(code) => {
                busy(&mut client, code, "");
                return;
            }
            Fault::Throttle(code, secs) => {
                busy(&mut client, code, &format!("retry-after: {secs}\r\n"));
                return;
            }
            _ => {}
        }
        let Some(mut answer) = forward(&head, &body, sh.upstream) else {
            return;
        };
        if sh.keep_alive.is_some() {
            answer = kept_alive(&head, answer);
        }
        if let Fault::Delay(d) = fault {
            std::thread::sleep(d);
        }
        if fault == Fault::DropAnswer {
            return;
        }
        let body_at = find(&answer, b"\r\n\r\n").map_or(answer.len(), |i| i + 4);
        let end = match fault {
            Fault::CutAnswer | Fault::ResetMidBody => body_at + (answer.len() - body_at) / 2,
            _ => answer.len(),
        };
        if client.write_all(&answer[..body_at]).is_err() {
            return;
        }
        let half = body_at + (end - body_at) / 2;
        for piece in answer[body_at..half]
            .chunks(PIECE)
            .chain(answer[half..end].chunks(PIECE))
        {
            if let Fault::DelayMidBody(d) = fault {
                if piece.as_ptr() == answer[half..].as_ptr() {
                    std::thread::sleep(d);
                }
            }
            if let Some(l) = &sh.limit {
                l.take(piece.len());
            }
            if client.write_all(piece).is_err() {
                return;
            }
            sh.count
                .answered
                .fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
        match fault {
            Fault::CutAnswer => return,
            Fault::ResetMidBody => {
                reset(&client);
                return;
            }
            _ => {}
        }
        // Azurite answered `connection: close`: the client will not reuse this one.
        if sh.keep_alive.is_none() && find(&answer[..body_at], b"onnection: close").is_some() {
            return;
        }
    }
}

/// Answers `code` with the error code `ServerBusy` and the `extra` header lines.
fn busy(client: &mut TcpStream, code: u16, extra: &str) {
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>injected</Message></Error>";
    let answer = format!(
        "HTTP/1.1 {code} Injected\r\nx-ms-error-code: ServerBusy\r\n{extra}content-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(answer.as_bytes());
}

/// Azurite's `answer` to `head` (asked for with `connection: close`) made fit for a
/// kept-alive connection: no `connection: close`, and a body framed by its length.
fn kept_alive(head: &str, answer: Vec<u8>) -> Vec<u8> {
    let body_at = find(&answer, b"\r\n\r\n").map_or(answer.len(), |i| i + 4);
    let text = String::from_utf8_lossy(&answer[..body_at]).into_owned();
    let lines: Vec<&str> = text
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let framed = lines.iter().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("content-length:") || l.starts_with("transfer-encoding:")
    });
    let status = lines
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("");
    let bodiless = head.starts_with("HEAD ") || matches!(status, "204" | "304");
    let mut out = lines.join("\r\n");
    if !framed && !bodiless {
        out.push_str(&format!("\r\ncontent-length: {}", answer.len() - body_at));
    }
    out.push_str("\r\n\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&answer[body_at..]);
    out
}

/// Sends one request to Azurite on its own connection and reads the whole answer.
fn forward(head: &str, body: &[u8], upstream: u16) -> Option<Vec<u8>> {
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = head.trim_end().to_string() + "\r\nconnection: close\r\n\r\n";
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).ok()?;
    Some(answer)
}

/// Closes `s` with a reset rather than a FIN (SO_LINGER 0).
fn reset(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: sets a socket option on a socket this function borrows; the struct lives
    // across the call.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request from `s`: its head (through the blank line) and its body (by
/// Content-Length; the client never sends a chunked one), read through the limiter and
/// counted as it arrives.
fn read_request(s: &mut TcpStream, sh: &Shared) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    for piece in body.chunks_mut(PIECE) {
        if let Some(l) = &sh.limit {
            l.take(piece.len());
        }
        s.read_exact(piece).ok()?;
        sh.count
            .received
            .fetch_add(piece.len() as u64, Ordering::SeqCst);
    }
    Some((head, body))
}
