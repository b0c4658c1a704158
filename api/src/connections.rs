//! How the node holds its HTTP connections: each one is bounded in time and their number is
//! bounded, so that idle or slow clients cannot take the node's sockets and file descriptors.
//!
//! - A request's head (request line and headers) must arrive within
//!   [`ConnectionLimits::header_read_timeout`] of its first byte, or the connection is closed
//!   (a client that sends its headers byte by byte is cut off).
//! - A connection that waits for its next request longer than
//!   [`ConnectionLimits::idle_timeout`] (a new one, or a kept-alive one after its last answer)
//!   is closed.
//! - At most [`ConnectionLimits::max_connections`] connections are served at once. A connection
//!   over the bound is answered 503 `too-many-connections` (with `Retry-After`) and closed; when
//!   [`MAX_REFUSING_CONNECTIONS`] are already being answered so, further ones are closed as
//!   soon as they are accepted.
//!
//! A request in progress (an answer being computed or streamed, such as an event stream) is
//! never cut by these timeouts; [`crate::REQUEST_TIMEOUT`] bounds the computing.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, Semaphore};
use tower::ServiceExt;

use crate::metrics::Metrics;
use crate::Problem;

/// Longest time from a request's first byte to the end of its head, by default.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time a connection may wait for its next request, by default.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub use vledger_domain::limits::MAX_CONNECTIONS;
pub use vledger_domain::limits::MAX_EVENT_SUBSCRIBERS;
pub use vledger_domain::limits::MAX_REFUSING_CONNECTIONS;
/// Time to wait before accepting again after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The bounds of the node's HTTP connections (configurable; see `vledger serve --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest time from a request's first byte to the end of its head.
    pub header_read_timeout: Duration,
    /// Longest time a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Most event streams open at once; more are answered 503 `too-many-subscribers`.
    pub max_event_subscribers: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_event_subscribers: MAX_EVENT_SUBSCRIBERS,
        }
    }
}

impl ConnectionLimits {
    /// Refuses limits that would stop the node from serving anything.
    pub fn check(&self) -> Result<(), String> {
        if self.header_read_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err("the header read and idle timeouts must be above 0".into());
        }
        if self.max_connections == 0 || self.max_event_subscribers == 0 {
            return Err("the connection and event-subscriber bounds must be at least 1".into());
        }
        Ok(())
    }
}

/// What a connection's watchdog knows of it.
struct Activity {
    started: Instant,
    /// Requests whose answer is not yet fully sent.
    in_flight: AtomicUsize,
    /// When the connection began to wait for its next request (ms after `started`).
    waiting_since_ms: AtomicU64,
    /// When the first byte of the next request came (ms after `started`), or [`NOT_YET`].
    head_started_ms: AtomicU64,
    /// Woken when the deadline changes.
    changed: Notify,
}

const NOT_YET: u64 = u64::MAX;

/// Why a connection's watchdog closes it.
#[derive(Debug, PartialEq, Eq)]
enum Expired {
    Idle,
    HeaderTimeout,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            waiting_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NOT_YET),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started_ms.load(Ordering::Acquire) == NOT_YET
        {
            self.head_started_ms.store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn answer_sent(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.head_started_ms.store(NOT_YET, Ordering::Release);
            self.waiting_since_ms
                .store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// When the connection expires as things stand (`None` while a request is in progress),
    /// and why.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Expired)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head_started = self.head_started_ms.load(Ordering::Acquire);
        let (from_ms, timeout, why) = if head_started == NOT_YET {
            (
                self.waiting_since_ms.load(Ordering::Acquire),
                limits.idle_timeout,
                Expired::Idle,
            )
        } else {
            (
                head_started,
                limits.header_read_timeout,
                Expired::HeaderTimeout,
            )
        };
        Some((self.started + Duration::from_millis(from_ms) + timeout, why))
    }
}

/// A connection's socket, telling its watchdog when bytes arrive.
struct WatchedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        result
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// An answer's body that tells the watchdog when it is done (sent or dropped).
struct TrackedBody {
    body: Body,
    activity: Arc<Activity>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.activity.answer_sent();
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The answer to every request on a connection over the bound.
fn too_many_connections(max: usize) -> Response<Body> {
    let mut response = axum::response::IntoResponse::into_response(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too-many-connections",
        format!("the node serves at most {max} connections at once; retry later"),
    ));
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then waits for the
/// open connections to finish their requests.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    metrics: Arc<Metrics>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let served = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING_CONNECTIONS));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        let (permit, refuse) = match served.clone().try_acquire_owned() {
            Ok(permit) => (permit, false),
            Err(_) => {
                metrics.connection_refused();
                match refusing.clone().try_acquire_owned() {
                    Ok(permit) => (permit, true),
                    // Closed at once: the client sees the connection end rather than wait.
                    Err(_) => continue,
                }
            }
        };
        let app = app.clone();
        let metrics = metrics.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            metrics.connection_opened(refuse);
            serve_connection(stream, app, limits, refuse, stopping).await;
            metrics.connection_closed(refuse);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it ends.
    let _ = served
        .acquire_many(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
        .await;
    let _ = refusing.acquire_many(MAX_REFUSING_CONNECTIONS as u32).await;
    Ok(())
}

/// Serves one connection until it ends, its watchdog closes it, or the server stops.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    refuse: bool,
    mut stopping: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedStream {
        stream,
        activity: activity.clone(),
    });
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let activity = service_activity.clone();
        activity.request_started();
        let app = app.clone();
        async move {
            let response = if refuse {
                too_many_connections(limits.max_connections)
            } else {
                match app.oneshot(request.map(Body::new)).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            };
            Ok::<_, Infallible>(response.map(|body| TrackedBody { body, activity }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None).keep_alive(!refuse);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut shutting_down = false;
    loop {
        let deadline = activity.deadline(&limits);
        let wake_at = deadline
            .as_ref()
            .map(|(at, _)| tokio::time::Instant::from_std(*at));
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => {}
            () = sleep_until(wake_at) => {
                // Look again: a byte or a request may have come since the deadline was taken.
                if let Some((at, why)) = activity.deadline(&limits) {
                    if at <= Instant::now() {
                        tracing::debug!(reason = ?why, "closing a connection");
                        return;
                    }
                }
            }
            changed = stopping.changed(), if !shutting_down => {
                if changed.is_err() || *stopping.borrow() {
                    shutting_down = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(300),
            ..Default::default()
        }
    }

    #[test]
    fn a_waiting_connection_expires_idle_then_by_its_head_once_bytes_come() {
        let activity = Activity::new();
        let (at, why) = activity.deadline(&limits()).unwrap();
        assert_eq!(why, Expired::Idle);
        assert_eq!(at, activity.started + Duration::from_millis(300));
        activity.read_some();
        let (_, why) = activity.deadline(&limits()).unwrap();
        assert_eq!(why, Expired::HeaderTimeout);
        activity.request_started();
        assert_eq!(activity.deadline(&limits()), None, "never during a request");
        activity.answer_sent();
        assert_eq!(activity.deadline(&limits()).unwrap().1, Expired::Idle);
    }

    #[test]
    fn limits_that_serve_nothing_are_refused() {
        assert!(ConnectionLimits::default().check().is_ok());
        for bad in [
            ConnectionLimits {
                max_connections: 0,
                ..Default::default()
            },
            ConnectionLimits {
                max_event_subscribers: 0,
                ..Default::default()
            },
            ConnectionLimits {
                idle_timeout: Duration::ZERO,
                ..Default::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
