//! Connections (PROTOCOL §10: "a server faces the open internet"). `axum::serve` hides
//! hyper's connection builder, so the server owns its accept loop, as axum's
//! `serve-with-hyper` example does, and with it every bound that lives below the router:
//!
//! - **Connection cap.** A slot is taken before `accept`; with every slot taken the loop
//!   stops accepting and new connections wait in the kernel's listen backlog.
//! - **Header, idle and stalled-reader timeouts.** hyper has one timer for these
//!   (`header_read_timeout`), started when it begins waiting for a request, so on a
//!   keep-alive connection it measures idle time and header time together and cannot
//!   give PROTOCOL §10's 60 s idle and 10 s headers (hyperium/hyper#3828). Each connection
//!   has a watchdog instead, fed by what moves on the socket and by the request cycle:
//!   waiting for a request, the connection may stay quiet for `idle_timeout_ms`, and once
//!   a request's first byte arrives its headers must be complete within
//!   `header_timeout_ms`; while an answer is being sent, a client that reads nothing for
//!   `idle_timeout_ms` is dropped, and with it the answer it pinned. The body's own
//!   deadline is tower-http's `RequestBodyDeadlineLayer` (see `router`).
//! - **URI and header sizes.** hyper is told to read a request head of up to
//!   `max_uri_bytes + max_header_bytes` (plus slack); the front checks each bound on its
//!   own, so that the answer names the right one (414 or 431) as problem JSON.
//! - **hyper's own refusals.** For a head it cannot parse or that is larger still, hyper
//!   writes an empty 400, 414 or 431 itself and closes. The socket wrapper recognises that
//!   answer (bytes written while no request is in progress, after everything before was
//!   flushed, can only be it) and sends the same status as problem JSON instead.
//! - **Answers in memory.** Every answer goes through the budget of `answers`.
//! - **Closing.** A connection is closed by shutting down its sending side and reading
//!   what the client still sends, briefly, so the kernel does not reset the connection
//!   and destroy the last answer before the client reads it.

use arc_swap::ArcSwap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use super::ApiError;
use super::answers::{self, AnswerBudget};
use crate::config::ServerConfig;
use crate::limits::{
    HEAD_SLACK_BYTES, LINGER_MAX_BYTES, LINGER_MS, MAX_CONFIG_TIMEOUT_MS, MAX_PAGE_BYTES,
};

/// Paths answered whatever the load: liveness and readiness must not be shed.
const PROBES: &[&str] = &["/healthz", "/readyz"];

/// hyper's smallest allowed read buffer (`max_buf_size` panics below it).
const HYPER_MIN_BUF_BYTES: usize = 8 * 1024;

/// The bounds a connection enforces, from the `[server]` config.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
}

impl Bounds {
    pub fn of(config: &ServerConfig) -> Bounds {
        Bounds {
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            max_connections: config.max_connections,
            max_uri_bytes: config.max_uri_bytes,
            max_header_bytes: config.max_header_bytes,
        }
    }

    /// The request head (request line and header fields) hyper reads at most before
    /// refusing it itself; the front refuses well-formed heads over either bound first.
    fn head_limit(&self) -> usize {
        self.max_uri_bytes
            .saturating_add(self.max_header_bytes)
            .saturating_add(HEAD_SLACK_BYTES)
    }
}

/// What every connection shares: the router, the answer budget, the bounds.
pub(super) struct Front {
    /// The router: the opening one while the ledger opens (`server::opening_router`),
    /// then the whole API, swapped in at once.
    pub router: ArcSwap<Router>,
    pub budget: Arc<AnswerBudget>,
    pub bounds: Bounds,
}

/// Accepts connections until `shutdown` completes, then lets each finish its request in
/// flight (closing idle ones at once) for at most `grace`.
pub(super) async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let max = front.bounds.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let (stop, stopping) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    let head_limit = front.bounds.head_limit();
    http.max_header_size(head_limit)
        // The read buffer must hold a whole head; it bounds what hyper buffers per
        // connection in each direction.
        .max_buf_size(head_limit.max(HYPER_MIN_BUF_BYTES))
        // The watchdog times headers (see the module's comment).
        .header_read_timeout(None)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, stop accepting and let the backlog hold new
        // connections, rather than accept and reset them.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        // Answers are written whole; waiting for more to coalesce only adds latency.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            tcp,
            front.clone(),
            http.clone(),
            stopping.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it is closed: all slots back, all closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {} ms after shutdown began; closing them",
            grace.as_millis()
        );
    }
}

/// As hyper 0.14 and axum do: a peer that gave up is nothing; anything else (most
/// likely out of file descriptors) is logged and accepting pauses for a moment.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection under its watchdog, then closes it.
async fn connection(
    mut tcp: TcpStream,
    front: Arc<Front>,
    http: hyper::server::conn::http1::Builder,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let bounds = front.bounds;
    {
        let io = TokioIo::new(ConnIo::new(&mut tcp, activity.clone(), bounds));
        let (service_front, service_activity) = (front.clone(), activity.clone());
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            respond(service_front.clone(), service_activity.clone(), request)
        });
        let conn = http.serve_connection(io, service);
        tokio::pin!(conn);
        let mut shutting_down = false;
        loop {
            let now = Instant::now();
            let (at, why) = activity.deadline(&bounds);
            if at <= now {
                tracing::debug!("closing a connection: {why}");
                break;
            }
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!("connection ended: {e}");
                    }
                    break;
                }
                () = tokio::time::sleep_until(at) => {}
                () = activity.changed.notified() => {}
                _ = stopping.changed(), if !shutting_down => {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    linger(&mut tcp).await;
}

/// Shuts down the sending side (after what is queued), then reads and discards what the
/// client still sends, within `LINGER_MS` and `LINGER_MAX_BYTES`.
async fn linger(tcp: &mut TcpStream) {
    if std::future::poll_fn(|cx| Pin::new(&mut *tcp).poll_shutdown(cx))
        .await
        .is_err()
    {
        return;
    }
    let until = Instant::now() + Duration::from_millis(LINGER_MS);
    let mut buf = [0u8; 4096];
    let mut read = 0;
    while read < LINGER_MAX_BYTES {
        if !matches!(
            tokio::time::timeout_at(until, tcp.readable()).await,
            Ok(Ok(()))
        ) {
            break;
        }
        match tcp.try_read(&mut buf) {
            Ok(n) if n > 0 => read += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => break,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The front: checks that need no route, then the router, then the answer budget.

async fn respond(
    front: Arc<Front>,
    activity: Arc<Activity>,
    request: hyper::Request<Incoming>,
) -> Result<Response, Infallible> {
    let seq = activity.request_started();
    let request: Request = request.map(Body::new);
    let must = must_answer(&request);
    let response = match front.refusal(&request, must) {
        Some(refused) => refused.into_response(),
        None => match Router::clone(&front.router.load()).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
    };
    activity.answer_ready();
    Ok(front
        .hold(response, must, AnswerOut { activity, seq })
        .await)
}

/// Whether a request's answer goes out whatever the answer budget: the probes', which
/// must answer under any load, and a submission's, which says what was written (to
/// refuse it after the write would tell a client 503 for entries that are in the
/// ledger). Submissions are bounded by `max_concurrent_requests` and their answers by
/// the batch size, so this cannot grow without bound either.
fn must_answer(request: &Request) -> bool {
    request.method() == Method::POST || PROBES.contains(&request.uri().path())
}

impl Front {
    /// A request refused before routing: its target or headers are over their bounds,
    /// or the answer budget is nearly spent (not even one page would fit) and its answer
    /// is not one that `must_answer`; building an answer only to refuse it would waste
    /// the time of those being served.
    fn refusal(&self, request: &Request, must: bool) -> Option<ApiError> {
        if target_bytes(request.uri()) > self.bounds.max_uri_bytes {
            return Some(ApiError::uri_too_long(self.bounds.max_uri_bytes));
        }
        let header_bytes: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_bytes > self.bounds.max_header_bytes {
            return Some(ApiError::headers_too_large(self.bounds.max_header_bytes));
        }
        if !must && self.budget.available() < MAX_PAGE_BYTES {
            return Some(ApiError::saturated(
                "the server holds as many answers as it may for clients that have not read them; retry shortly",
            ));
        }
        None
    }

    /// The answer with its bytes reserved from the budget until written, or a 503 if
    /// they do not fit (never for answers that `must` go out).
    async fn hold(&self, response: Response, must: bool, out: AnswerOut) -> Response {
        let (parts, body) = response.into_parts();
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!("an answer could not be read: {e}");
                return self.refuse(out, "an answer could not be read").await;
            }
        };
        let reservation = if must {
            Some(self.budget.reserve_anyway(bytes.len()))
        } else {
            self.budget.reserve(bytes.len())
        };
        match reservation {
            Some(reservation) => {
                Response::from_parts(parts, answers::hold(bytes, reservation, out))
            }
            None => {
                drop(bytes);
                self.refuse(
                    out,
                    "the answer does not fit in the memory the server keeps for answers not yet read; retry shortly",
                )
                .await
            }
        }
    }

    /// A 503 in place of an answer; small, and counted like any other.
    async fn refuse(&self, out: AnswerOut, detail: &str) -> Response {
        let (parts, body) = ApiError::saturated(detail).into_response().into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_else(|e| unreachable!("a problem body in memory reads: {e}"));
        let reservation = self.budget.reserve_anyway(bytes.len());
        Response::from_parts(parts, answers::hold(bytes, reservation, out))
    }
}

/// The request target's length as it came on the request line.
fn target_bytes(uri: &Uri) -> usize {
    let path_and_query = uri.path_and_query().map_or(0, |p| p.as_str().len());
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => {
            scheme.len() + "://".len() + authority.as_str().len() + path_and_query
        }
        (_, Some(authority)) => authority.as_str().len() + path_and_query,
        _ => path_and_query,
    }
}

// ---------------------------------------------------------------------------------------
// The watchdog's view of a connection.

/// Where a connection is in its request cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// No request in progress: idle, or receiving the next request's head.
    Waiting = 0,
    /// A handler is working on a request (its own timeouts apply).
    Handling = 1,
    /// The answer is being written.
    Sending = 2,
}

const NONE: u64 = u64::MAX;

/// What moved on a connection and when, shared by its socket, its requests and its
/// watchdog (one task; atomics only because hyper's types must be `Send`).
struct Activity {
    born: Instant,
    /// Milliseconds since `born` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// When the first byte of the request head now being received arrived, or `NONE`.
    head_since_ms: AtomicU64,
    phase: AtomicU8,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// Wakes the watchdog when its deadline may have moved earlier.
    changed: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            born: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(NONE),
            phase: AtomicU8::new(Phase::Waiting as u8),
            requests: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.born + Duration::from_millis(ms)
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Waiting,
            1 => Phase::Handling,
            _ => Phase::Sending,
        }
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_one();
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }

    fn on_read(&self) {
        self.on_read_at(self.now_ms());
    }

    fn on_read_at(&self, now: u64) {
        self.last_io_ms.store(now, Ordering::Release);
        if self.phase() == Phase::Waiting
            && self
                .head_since_ms
                .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn on_write(&self) {
        self.on_write_at(self.now_ms());
    }

    fn on_write_at(&self, now: u64) {
        self.last_io_ms.store(now, Ordering::Release);
    }

    /// hyper has a whole request head; returns the request's number.
    fn request_started(&self) -> u64 {
        let seq = self.requests.fetch_add(1, Ordering::AcqRel) + 1;
        self.head_since_ms.store(NONE, Ordering::Release);
        self.set_phase(Phase::Handling);
        seq
    }

    fn answer_ready(&self) {
        self.set_phase(Phase::Sending);
    }

    /// Request `seq`'s answer is written (or abandoned); unless a later request has
    /// begun meanwhile, the connection waits for the next one, idle from now.
    fn answer_out(&self, seq: u64) {
        self.answer_out_at(seq, self.now_ms());
    }

    fn answer_out_at(&self, seq: u64, now: u64) {
        if self.requests() == seq {
            self.last_io_ms.store(now, Ordering::Release);
            self.set_phase(Phase::Waiting);
        }
    }

    /// When the connection is to be closed unless something moves first, and why.
    fn deadline(&self, bounds: &Bounds) -> (Instant, &'static str) {
        let last_io = self.last_io_ms.load(Ordering::Acquire);
        let idle = self.at(last_io) + bounds.idle_timeout;
        match self.phase() {
            Phase::Waiting => match self.head_since_ms.load(Ordering::Acquire) {
                NONE => (idle, "idle for the idle timeout"),
                since => {
                    let head = self.at(since) + bounds.header_timeout;
                    if head < idle {
                        (
                            head,
                            "request headers not complete within the header timeout",
                        )
                    } else {
                        (idle, "idle for the idle timeout")
                    }
                }
            },
            // The handler's own timeouts (request, body) bound this phase; look again
            // no later than the earliest deadline the next phase could bring.
            Phase::Handling => (
                Instant::now() + bounds.idle_timeout.min(bounds.header_timeout),
                "handling",
            ),
            Phase::Sending => (
                idle,
                "the client read nothing of its answer for the idle timeout",
            ),
        }
    }
}

/// Marks request `seq`'s answer as out when dropped (the answer's bytes carry it).
struct AnswerOut {
    activity: Arc<Activity>,
    seq: u64,
}

impl Drop for AnswerOut {
    fn drop(&mut self) {
        self.activity.answer_out(self.seq);
    }
}

// ---------------------------------------------------------------------------------------
// The socket as hyper sees it.

/// The connection's socket, reporting what moves to the watchdog and replacing hyper's
/// empty refusals with problem JSON.
struct ConnIo<'a> {
    tcp: &'a mut TcpStream,
    activity: Arc<Activity>,
    bounds: Bounds,
    /// `requests()` when hyper last flushed with no request in progress: from then until
    /// the next request starts, whatever hyper writes is one of its own refusals.
    flushed_at: Option<u64>,
    /// The request line of the head being received: the request it follows, whether it
    /// has ended, and its length so far (to tell a long URI from long headers).
    line_after: u64,
    line_ended: bool,
    line_bytes: usize,
    /// Our answer in place of hyper's refusal, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<'a> ConnIo<'a> {
    fn new(tcp: &'a mut TcpStream, activity: Arc<Activity>, bounds: Bounds) -> ConnIo<'a> {
        ConnIo {
            tcp,
            activity,
            bounds,
            flushed_at: Some(0),
            line_after: 0,
            line_ended: false,
            line_bytes: 0,
            replacement: None,
        }
    }

    fn note_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.activity.on_read();
        if self.activity.phase() != Phase::Waiting {
            return;
        }
        let requests = self.activity.requests();
        if requests != self.line_after {
            self.line_after = requests;
            self.line_ended = false;
            self.line_bytes = 0;
        }
        if !self.line_ended {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.line_ended = true;
                    self.line_bytes += end;
                }
                None => self.line_bytes += bytes.len(),
            }
        }
    }

    /// If hyper is writing one of its own refusals, prepares ours instead.
    fn intercept(&mut self, first: &[u8]) -> bool {
        if self.replacement.is_some() {
            return true;
        }
        let waiting = self.activity.phase() == Phase::Waiting
            && self.flushed_at == Some(self.activity.requests());
        if !waiting {
            return false;
        }
        let Some(status) = refusal_status(first) else {
            return false;
        };
        // hyper says 431 for any head too large to read; if the request line alone
        // was over the URI bound, the URI is what was too long.
        let status = if status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            && !self.line_ended
            && self.line_bytes > self.bounds.max_uri_bytes
        {
            StatusCode::URI_TOO_LONG
        } else {
            status
        };
        let problem =
            ApiError::before_handler(status, self.bounds.max_uri_bytes, self.bounds.head_limit());
        self.replacement = Some((problem.http1_bytes(), 0));
        true
    }

    /// Writes what is left of the replacement.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some((bytes, written)) = &mut self.replacement {
            while *written < bytes.len() {
                let n = ready!(Pin::new(&mut *self.tcp).poll_write(cx, &bytes[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
                self.activity.on_write();
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The status of an answer hyper writes on its own before any handler ran (it writes
/// 400, 414 and 431 for request heads it cannot parse or read).
fn refusal_status(bytes: &[u8]) -> Option<StatusCode> {
    let code = bytes.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    let status = StatusCode::from_bytes(code).ok()?;
    [
        StatusCode::BAD_REQUEST,
        StatusCode::URI_TOO_LONG,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ]
    .contains(&status)
    .then_some(status)
}

impl AsyncRead for ConnIo<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut *self.tcp).poll_read(cx, buf))?;
        let this = &mut *self;
        this.note_read(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ConnIo<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.intercept(buf) {
            // hyper's bytes are taken and dropped; ours go out before its flush ends.
            ready!(self.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut *self.tcp).poll_write(cx, buf))?;
        if n > 0 {
            self.activity.on_write();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if self.intercept(first) {
            ready!(self.poll_replacement(cx))?;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let n = ready!(Pin::new(&mut *self.tcp).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            self.activity.on_write();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        // hyper then queues answer bytes instead of copying them into its own buffer,
        // so an answer is in memory once, under its reservation.
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        ready!(Pin::new(&mut *self.tcp).poll_flush(cx))?;
        // hyper flushes the socket only once its own buffer is empty.
        if self.activity.phase() == Phase::Waiting {
            self.flushed_at = Some(self.activity.requests());
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut *self.tcp).poll_shutdown(cx)
    }
}

/// The longest a shutdown waits for connections, whatever the config says.
pub(super) fn grace(config: &ServerConfig) -> Duration {
    Duration::from_millis(
        config
            .request_timeout_ms
            .max(config.body_timeout_ms)
            .min(MAX_CONFIG_TIMEOUT_MS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_refusals_are_recognised_and_nothing_else() {
        let head = |s: &str| format!("HTTP/1.1 {s}\r\ncontent-length: 0\r\n\r\n").into_bytes();
        for (line, status) in [
            ("400 Bad Request", Some(StatusCode::BAD_REQUEST)),
            ("414 URI Too Long", Some(StatusCode::URI_TOO_LONG)),
            (
                "431 Request Header Fields Too Large",
                Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            ),
            ("200 OK", None),
            ("404 Not Found", None),
        ] {
            assert_eq!(refusal_status(&head(line)), status, "{line}");
        }
        assert_eq!(
            refusal_status(b"HTTP/1.0 400 Bad Request\r\n"),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(refusal_status(b"{\"HTTP/1.1 400"), None);
        assert_eq!(refusal_status(b"HTTP/1.1 4"), None);
        assert_eq!(refusal_status(b""), None);
    }

    #[test]
    fn the_target_is_measured_as_sent() {
        let uri: Uri = "/v1/entries?limit=5".parse().unwrap();
        assert_eq!(target_bytes(&uri), "/v1/entries?limit=5".len());
        let uri: Uri = "http://example.com/v1/x?y=1".parse().unwrap();
        assert_eq!(target_bytes(&uri), "http://example.com/v1/x?y=1".len());
    }

    #[test]
    fn the_watchdog_times_idleness_and_headers_apart() {
        let bounds = Bounds {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
            max_uri_bytes: 8192,
            max_header_bytes: 16384,
        };
        let s = |n: u64| n * 1000;
        let a = Activity::new();
        let at = |n: u64| a.born + Duration::from_secs(n);
        assert_eq!(a.deadline(&bounds).0, at(60));
        // The first byte of a head, at 30 s: its headers are due 10 s later, not at 60.
        a.on_read_at(s(30));
        assert_eq!(a.deadline(&bounds).0, at(40));
        // More bytes do not move the header deadline.
        a.on_read_at(s(35));
        assert_eq!(a.deadline(&bounds).0, at(40));
        let seq = a.request_started();
        a.answer_ready();
        a.on_write_at(s(36));
        // A client that reads nothing of its answer: dropped after the idle timeout.
        assert_eq!(a.deadline(&bounds).0, at(96));
        a.answer_out_at(seq, s(37));
        // Idle from the end of the answer, and no head under way.
        assert_eq!(a.deadline(&bounds).0, at(97));
        // An answer that ends after the next request began changes nothing.
        let next = a.request_started();
        a.answer_out_at(seq, s(38));
        assert_eq!(a.phase(), Phase::Handling);
        a.answer_out_at(next, s(39));
        assert_eq!(a.phase(), Phase::Waiting);
        assert_eq!(a.deadline(&bounds).0, at(99));
    }
}
