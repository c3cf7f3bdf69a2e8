//! HBONE: TCP tunnelled as HTTP/2 `CONNECT ip:port` streams over mesh mTLS (ALPN `h2`), as
//! ztunnel and waypoints speak it on port 15008.
//!
//! - Server: [`serve`] one accepted connection (or [`serve_listener`] a whole listener) with
//!   a handler that sees each CONNECT ([`ConnectRequest`]) and answers with a policy decision:
//!   `Err(status)` refuses the stream (401/403 for denied), `Ok(`[`HboneAccept`]`)` answers
//!   200 and hands the tunnel ([`H2Stream`]) to the accept's continuation.
//! - Client: [`HbonePool::connect`] opens a tunnel over a pooled connection per
//!   (source identity, destination address, expected destination identity).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures::future::BoxFuture;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::ca::{Ca, WorkloadCert};
use super::identity::Identity;
use super::tls::{self, TlsError};

/// The ALPN protocol HBONE requires.
pub const ALPN_H2: &[u8] = b"h2";

/// The HBONE port.
pub const HBONE_PORT: u16 = 15008;

// HTTP/2 settings close to ztunnel's defaults (its `config.rs`: window_size 4 MiB,
// connection_window_size 16 MiB, frame_size 1 MiB, pool max streams per connection 100):
// large windows let one tunnel fill a fast link without waiting for WINDOW_UPDATEs, and a
// large frame size keeps per-frame overhead low for bulk transfers.
/// Initial flow-control window of each stream.
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Initial flow-control window of each connection.
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// Largest DATA frame either side accepts.
pub const MAX_FRAME_SIZE: u32 = 1024 * 1024;
/// Streams a pooled connection carries before the pool opens another connection.
pub const MAX_STREAMS_PER_CONNECTION: usize = 100;
/// Bytes h2 may buffer per stream before `poll_write` waits (h2's default is 400 KiB, which
/// would cap a stream below its 4 MiB window).
const SEND_BUFFER: usize = 4 * 1024 * 1024;
/// Buffer per direction of [`splice`].
const SPLICE_BUFFER: usize = 64 * 1024;
/// Read buffer under each HBONE connection's TLS: rustls reads at most 4 KiB per call (its
/// deframer's read size), so without it a 16 KiB record costs four `recv` calls; with it one
/// `recv` fetches many records and rustls reads them from memory.
const TLS_READ_BUFFER: usize = 64 * 1024;
/// Encrypted bytes rustls may queue before a write waits for the socket (its default is
/// 64 KiB): h2 hands over whole DATA frames, and a larger queue turns one into one `writev`.
const TLS_SEND_BUFFER: usize = 1024 * 1024;
/// Largest chunk one `poll_write` copies into a frame.
const WRITE_CHUNK: usize = MAX_FRAME_SIZE as usize;

/// Why an HBONE connection or tunnel failed.
#[derive(Debug, thiserror::Error)]
pub enum HboneError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(
        "cannot open a TCP connection to the HBONE peer {dst}: {source}; check that its port {HBONE_PORT} listener is up and reachable"
    )]
    Connect {
        dst: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the peer negotiated ALPN {got:?}, not h2; HBONE needs HTTP/2 (offer ALPN h2)")]
    NoH2 { got: Option<String> },
    #[error("HTTP/2 error on the HBONE connection: {0}; the peer closed it or sent invalid frames")]
    H2(#[from] h2::Error),
    #[error("the HBONE peer refused CONNECT {authority} with {status}{hint}")]
    Refused {
        authority: SocketAddr,
        status: StatusCode,
        hint: &'static str,
    },
}

impl HboneError {
    /// The status of a refused CONNECT, if that is what happened.
    pub fn refused_status(&self) -> Option<StatusCode> {
        match self {
            HboneError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn refusal_hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            "; the destination's AuthorizationPolicy denies this source"
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => {
            "; the destination proxy could not reach the target"
        }
        _ => "",
    }
}

fn h2_to_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        e.into_io()
            .unwrap_or_else(|| io::Error::other("h2 I/O error"))
    } else {
        io::Error::new(io::ErrorKind::ConnectionReset, e)
    }
}

/// One tunnel: an HTTP/2 stream as a byte stream (tokio `AsyncRead + AsyncWrite`, so
/// `tokio::io::copy_bidirectional` works on it). Shutting down the write side ends the
/// stream (END_STREAM); dropping it before that resets the stream.
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received but not yet read; its flow-control capacity is released as it is read, so
    /// the peer's window tracks what the reader actually consumed.
    pending: Bytes,
    sent: u64,
    received: u64,
    write_closed: bool,
    _slot: Option<Arc<StreamSlot>>,
}

impl H2Stream {
    fn new(send: SendStream<Bytes>, recv: RecvStream, slot: Option<StreamSlot>) -> Self {
        H2Stream {
            send,
            recv,
            pending: Bytes::new(),
            sent: 0,
            received: 0,
            write_closed: false,
            _slot: slot.map(Arc::new),
        }
    }

    /// Payload bytes written into the tunnel so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// Payload bytes read from the tunnel so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }
}

impl std::fmt::Debug for H2Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Stream")
            .field("id", &self.send.stream_id())
            .field("sent", &self.sent)
            .field("received", &self.received)
            .finish()
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                this.received += n as u64;
                this.recv
                    .flow_control()
                    .release_capacity(n)
                    .map_err(h2_to_io)?;
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(data)) => this.pending = data,
                // The peer ending its side with NO_ERROR after its data is a clean close.
                Some(Err(e)) if e.reason() == Some(h2::Reason::NO_ERROR) => {
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => return Poll::Ready(Err(h2_to_io(e))),
            }
        }
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        this.send.reserve_capacity(buf.len().min(WRITE_CHUNK));
        loop {
            match ready!(this.send.poll_capacity(cx)) {
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                Some(Err(e)) => return Poll::Ready(Err(h2_to_io(e))),
                Some(Ok(0)) => continue,
                Some(Ok(cap)) => {
                    let n = cap.min(buf.len());
                    this.send
                        .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                        .map_err(h2_to_io)?;
                    this.sent += n as u64;
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection task writes queued frames as soon as it can; nothing to push here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.write_closed = true;
            this.send.send_data(Bytes::new(), true).map_err(h2_to_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

/// Bytes moved by [`splice`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transferred {
    /// Read from the tunnel, written to the other side.
    pub from_tunnel: u64,
    /// Read from the other side, written into the tunnel.
    pub to_tunnel: u64,
}

/// Copies both ways between a tunnel and another stream until both directions end.
pub async fn splice<T>(tunnel: &mut H2Stream, other: &mut T) -> io::Result<Transferred>
where
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    // 64 KiB per direction (tokio's default is 8 KiB): fewer DATA frames; 256 KiB measured
    // slower on loopback (the buffers fall out of cache).
    let (from_tunnel, to_tunnel) =
        tokio::io::copy_bidirectional_with_sizes(tunnel, other, SPLICE_BUFFER, SPLICE_BUFFER)
            .await?;
    Ok(Transferred {
        from_tunnel,
        to_tunnel,
    })
}

impl H2Stream {
    /// Splits the tunnel into halves that move payload as [`Bytes`] (see [`splice_bytes`]).
    /// Anything already received but not yet read comes first out of the receiving half; the
    /// pool's stream slot is held until both halves are dropped.
    pub fn into_split(self) -> (TunnelSend, TunnelRecv) {
        (
            TunnelSend {
                send: self.send,
                closed: self.write_closed,
                _slot: self._slot.clone(),
            },
            TunnelRecv {
                recv: self.recv,
                pending: self.pending,
                _slot: self._slot,
            },
        )
    }
}

/// The sending half of a tunnel.
pub struct TunnelSend {
    send: SendStream<Bytes>,
    closed: bool,
    _slot: Option<Arc<StreamSlot>>,
}

impl TunnelSend {
    /// Sends `data` in DATA frames as flow control allows, without copying it (frames are
    /// slices of `data`).
    pub async fn send(&mut self, mut data: Bytes) -> io::Result<()> {
        if self.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        while !data.is_empty() {
            self.send.reserve_capacity(data.len().min(WRITE_CHUNK));
            let cap = std::future::poll_fn(|cx| self.send.poll_capacity(cx)).await;
            match cap {
                None => return Err(io::ErrorKind::BrokenPipe.into()),
                Some(Err(e)) => return Err(h2_to_io(e)),
                Some(Ok(0)) => continue,
                Some(Ok(cap)) => {
                    let frame = data.split_to(cap.min(data.len()));
                    self.send.send_data(frame, false).map_err(h2_to_io)?;
                }
            }
        }
        Ok(())
    }

    /// Ends the stream (END_STREAM), as shutting down an [`H2Stream`]'s write side does.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.closed {
            self.closed = true;
            self.send.send_data(Bytes::new(), true).map_err(h2_to_io)?;
        }
        Ok(())
    }
}

/// The receiving half of a tunnel.
pub struct TunnelRecv {
    recv: RecvStream,
    pending: Bytes,
    _slot: Option<Arc<StreamSlot>>,
}

impl TunnelRecv {
    /// The next payload received (a DATA frame's, as h2 buffered it), or `None` at the end of
    /// the stream. Its flow-control capacity is released at once, as [`H2Stream`]'s reads
    /// release what they take.
    pub async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            let data = if self.pending.is_empty() {
                match std::future::poll_fn(|cx| self.recv.poll_data(cx)).await {
                    None => return Ok(None),
                    Some(Ok(data)) => data,
                    // The peer ending its side with NO_ERROR after its data is a clean close.
                    Some(Err(e)) if e.reason() == Some(h2::Reason::NO_ERROR) => return Ok(None),
                    Some(Err(e)) => return Err(h2_to_io(e)),
                }
            } else {
                std::mem::take(&mut self.pending)
            };
            if data.is_empty() {
                continue;
            }
            self.recv
                .flow_control()
                .release_capacity(data.len())
                .map_err(h2_to_io)?;
            return Ok(Some(data));
        }
    }
}

/// What [`splice_bytes`] reads from the other side per call: it starts small (an idle or
/// request/response connection holds little) and doubles while reads return at least that
/// much (a bulk stream: fewer `recv` calls, DATA frames and wakeups per byte; measured over
/// veth, 1 MiB reads cost 10-15% less CPU per byte than 64 KiB ones), back to small after a
/// shorter read (the stream went quiet or turned request/response).
const SPLICE_MIN_READ: usize = SPLICE_BUFFER;
const SPLICE_MAX_READ: usize = MAX_FRAME_SIZE as usize;
/// A request/response stream reads into what is left of its last allocation until less than
/// this is left.
const SPLICE_REFILL_BELOW: usize = 8 * 1024;

/// Which way a chunk went through a spliced tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Out of the tunnel, to the other connection.
    FromTunnel,
    /// From the other connection, into the tunnel.
    ToTunnel,
}

/// Like [`splice`] (both ways until both directions end), but without copying the tunnel's
/// payload in user space: what is read from `other` goes into DATA frames as it was read, and
/// received frames are written to `other` straight from h2's buffers. `on_bytes` sees the size
/// and direction of each chunk that went through as it passes, e.g. to charge a cost floor. A
/// direction that fails ends as if at EOF (its write side is shut down).
pub async fn splice_bytes<T, F>(tunnel: H2Stream, other: T, on_bytes: F) -> Transferred
where
    T: AsyncRead + AsyncWrite + Send + 'static,
    F: Fn(Direction, usize) + Send + Sync + 'static,
{
    let (mut tx, mut rx) = tunnel.into_split();
    let (mut r, mut w) = tokio::io::split(other);
    let on_bytes = Arc::new(on_bytes);
    let charge = on_bytes.clone();
    let to_tunnel = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        let mut total = 0u64;
        let mut want = SPLICE_MIN_READ;
        loop {
            // After a short read the rest of the allocation serves the next reads (a chunk
            // still queued in h2 keeps its own slice alive). Reserving `want` every time would
            // defeat that: the previous chunk is usually still queued when the next read
            // starts, so each request would pay a fresh 64 KiB allocation.
            if want > SPLICE_MIN_READ || buf.capacity() < SPLICE_REFILL_BELOW {
                buf.reserve(want);
            }
            let n = match r.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            want = if n >= SPLICE_MIN_READ {
                (want * 2).min(SPLICE_MAX_READ)
            } else {
                SPLICE_MIN_READ
            };
            if tx.send(buf.split().freeze()).await.is_err() {
                break;
            }
            total += n as u64;
            charge(Direction::ToTunnel, n);
        }
        let _ = tx.finish();
        total
    });
    let mut from_tunnel = 0u64;
    while let Ok(Some(data)) = rx.recv().await {
        if w.write_all(&data).await.is_err() {
            break;
        }
        from_tunnel += data.len() as u64;
        on_bytes(Direction::FromTunnel, data.len());
    }
    let _ = w.shutdown().await;
    Transferred {
        from_tunnel,
        to_tunnel: to_tunnel.await.unwrap_or(0),
    }
}

// ---------------------------------------------------------------------------------------
// Server

/// A CONNECT the server received, for the handler to decide on.
#[derive(Debug)]
pub struct ConnectRequest {
    /// Where the client wants to go (the `:authority`, always `ip:port`).
    pub authority: SocketAddr,
    /// The client's mTLS identity.
    pub peer: Identity,
    /// The client's address as the server's socket sees it.
    pub peer_addr: Option<SocketAddr>,
    /// Request headers (e.g. `forwarded`, `baggage`).
    pub headers: HeaderMap,
}

type Continuation = Box<dyn FnOnce(H2Stream) -> BoxFuture<'static, ()> + Send>;

/// A handler's "yes": the server answers 200 and runs the continuation with the tunnel.
pub struct HboneAccept(Continuation);

impl HboneAccept {
    /// Runs `f` with the tunnel once the 200 is sent.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: FnOnce(H2Stream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        HboneAccept(Box::new(move |s| Box::pin(f(s))))
    }

    /// Splices the tunnel to `upstream` (typically the TCP connection the handler opened to
    /// the target before accepting), then reports the byte counts to `done`.
    pub fn splice<T, D>(mut upstream: T, done: D) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        D: FnOnce(io::Result<Transferred>) + Send + 'static,
    {
        HboneAccept::new(move |mut tunnel| async move {
            done(splice(&mut tunnel, &mut upstream).await);
        })
    }
}

impl std::fmt::Debug for HboneAccept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HboneAccept")
    }
}

fn server_builder() -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_send_buffer_size(SEND_BUFFER)
        // Headroom over the client pool's limit, so a pool never sees REFUSED_STREAM.
        .max_concurrent_streams(2 * MAX_STREAMS_PER_CONNECTION as u32);
    b
}

fn status_only(status: StatusCode) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = status;
    r
}

/// Serves one accepted connection on an HBONE port: mTLS handshake (client certificate
/// required), ALPN must be h2 (else the connection is closed), then every HTTP/2 request is
/// checked (method CONNECT, else 405; authority `ip:port`, else 400) and handed to
/// `handler`, each stream on its own task. Returns when the client closes the connection.
pub async fn serve<S, H, F>(io: S, config: Arc<ServerConfig>, handler: H) -> Result<(), HboneError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(ConnectRequest) -> F + Send + Sync + 'static,
    F: Future<Output = Result<HboneAccept, StatusCode>> + Send + 'static,
{
    serve_inner(io, None, config, Arc::new(handler)).await
}

async fn serve_inner<S, H, F>(
    io: S,
    peer_addr: Option<SocketAddr>,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
) -> Result<(), HboneError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(ConnectRequest) -> F + Send + Sync + 'static,
    F: Future<Output = Result<HboneAccept, StatusCode>> + Send + 'static,
{
    let (mut tls, peer) =
        tls::accept(BufReader::with_capacity(TLS_READ_BUFFER, io), config).await?;
    tls.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
    let alpn = tls.get_ref().1.alpn_protocol();
    if alpn != Some(ALPN_H2) {
        return Err(HboneError::NoH2 {
            got: alpn.map(|p| String::from_utf8_lossy(p).into_owned()),
        });
    }
    serve_h2(tls, peer, peer_addr, handler).await
}

/// The part of [`serve`] after the mTLS handshake: HTTP/2 on `io`, each CONNECT checked and
/// handed to `handler` on its own task, for the client authenticated as `peer`.
async fn serve_h2<S, H, F>(
    io: S,
    peer: Identity,
    peer_addr: Option<SocketAddr>,
    handler: Arc<H>,
) -> Result<(), HboneError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(ConnectRequest) -> F + Send + Sync + 'static,
    F: Future<Output = Result<HboneAccept, StatusCode>> + Send + 'static,
{
    let mut conn = server_builder().handshake::<_, Bytes>(io).await?;
    while let Some(next) = conn.accept().await {
        let (req, mut respond) = next?;
        let handler = handler.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            let (parts, body) = req.into_parts();
            if parts.method != Method::CONNECT {
                let _ = respond.send_response(status_only(StatusCode::METHOD_NOT_ALLOWED), true);
                return;
            }
            let authority = parts
                .uri
                .authority()
                .and_then(|a| a.as_str().parse::<SocketAddr>().ok());
            let Some(authority) = authority else {
                let _ = respond.send_response(status_only(StatusCode::BAD_REQUEST), true);
                return;
            };
            let req = ConnectRequest {
                authority,
                peer,
                peer_addr,
                headers: parts.headers,
            };
            match handler(req).await {
                Err(status) => {
                    let _ = respond.send_response(status_only(status), true);
                }
                Ok(HboneAccept(run)) => {
                    match respond.send_response(status_only(StatusCode::OK), false) {
                        Ok(send) => run(H2Stream::new(send, body, None)).await,
                        Err(e) => tracing::debug!(%authority, "HBONE stream gone before 200: {e}"),
                    }
                }
            }
        });
    }
    Ok(())
}

/// Accepts connections on `listener` forever, serving each with [`serve`] on its own task;
/// failed handshakes and refused connections are logged at debug level.
pub async fn serve_listener<H, F>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    counters: Option<Arc<crate::component::Counters>>,
    handler: H,
) where
    H: Fn(ConnectRequest) -> F + Send + Sync + 'static,
    F: Future<Output = Result<HboneAccept, StatusCode>> + Send + 'static,
{
    let handler = Arc::new(handler);
    let errors = counters.as_ref().map(|c| &c.accept_errors);
    loop {
        let (tcp, addr) = crate::accept::next(&listener, "hbone", errors).await;
        let _ = tcp.set_nodelay(true);
        let (config, handler) = (config.clone(), handler.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_inner(tcp, Some(addr), config, handler).await {
                tracing::debug!(%addr, "HBONE connection ended: {e}");
            }
        });
    }
}

/// Serves HTTP/2 CONNECTs on `io` as [`serve`] does after its mTLS handshake (same code), with
/// `peer` taken as the authenticated client and no TLS: for the `hbone_server` fuzz target,
/// which feeds it frames from an untrusted peer. Not for production use.
#[doc(hidden)]
pub async fn serve_h2_plaintext<S, H, F>(
    io: S,
    peer: Identity,
    handler: H,
) -> Result<(), HboneError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(ConnectRequest) -> F + Send + Sync + 'static,
    F: Future<Output = Result<HboneAccept, StatusCode>> + Send + 'static,
{
    serve_h2(io, peer, None, Arc::new(handler)).await
}

// ---------------------------------------------------------------------------------------
// Headers

/// The workload facts ztunnel puts in the `baggage` header for the peer's telemetry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    pub cluster: String,
    pub namespace: String,
    /// `deployment`, `statefulset`, `pod`, ...
    pub workload_kind: String,
    pub workload_name: String,
    pub service_name: String,
    pub service_version: String,
}

impl Baggage {
    /// `k8s.cluster.name=..,k8s.namespace.name=..,k8s.<kind>.name=..,service.name=..,service.version=..`
    pub fn to_header(&self) -> String {
        format!(
            "k8s.cluster.name={},k8s.namespace.name={},k8s.{}.name={},service.name={},service.version={}",
            self.cluster,
            self.namespace,
            self.workload_kind,
            self.workload_name,
            self.service_name,
            self.service_version
        )
    }

    /// Reads what [`Baggage::to_header`] writes; unknown members are ignored.
    pub fn parse(header: &str) -> Baggage {
        let mut b = Baggage::default();
        for (k, v) in header.split(',').filter_map(|kv| kv.trim().split_once('=')) {
            match k {
                "k8s.cluster.name" => b.cluster = v.to_string(),
                "k8s.namespace.name" => b.namespace = v.to_string(),
                "service.name" => b.service_name = v.to_string(),
                "service.version" => b.service_version = v.to_string(),
                _ => {
                    if let Some(kind) = k.strip_prefix("k8s.").and_then(|r| r.strip_suffix(".name"))
                    {
                        b.workload_kind = kind.to_string();
                        b.workload_name = v.to_string();
                    }
                }
            }
        }
        b
    }
}

/// The original source address ztunnel put in `forwarded: for=<ip>`.
pub fn forwarded_for(h: &http::HeaderMap) -> Option<std::net::IpAddr> {
    let v = h.get(http::header::FORWARDED)?.to_str().ok()?;
    v.split(';')
        .find_map(|p| p.trim().strip_prefix("for="))
        .and_then(|ip| ip.trim_matches('"').parse().ok())
}

/// The headers ztunnel sends on a CONNECT: `forwarded: for=<source ip>` and, when given,
/// `baggage`. Values that are not valid header text are left out.
pub fn tunnel_headers(src_ip: IpAddr, baggage: Option<&Baggage>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let fwd = match src_ip {
        IpAddr::V4(ip) => format!("for={ip}"),
        IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    };
    if let Ok(v) = HeaderValue::from_str(&fwd) {
        h.insert(http::header::FORWARDED, v);
    }
    if let Some(v) = baggage.and_then(|b| HeaderValue::from_str(&b.to_header()).ok()) {
        h.insert("baggage", v);
    }
    h
}

// ---------------------------------------------------------------------------------------
// Client pool

/// Opens the TCP connection under a tunnel; proxies plug in one that makes the socket in
/// the right namespace with the proxy mark (e.g. `proxy::sock::connect_in`).
pub type Connector =
    Arc<dyn Fn(SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> + Send + Sync>;

/// A [`Connector`] that connects from the calling thread's namespace, with TCP_NODELAY.
pub fn plain_connector() -> Connector {
    Arc::new(|addr| {
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(s)
        })
    })
}

type PoolKey = (Identity, SocketAddr, Identity);

/// Client side of HBONE: tunnels multiplexed over pooled mTLS HTTP/2 connections, one pool
/// per (source identity, destination address, expected destination identity). A connection
/// carries up to [`MAX_STREAMS_PER_CONNECTION`] open tunnels; beyond that another one is
/// opened; closed connections are dropped and replaced on the next connect. Cloning shares
/// the pool.
///
/// Sockets come from the pool's [`Connector`]: use one pool per socket context (e.g. per
/// pod namespace in ztunnel's in-pod mode).
#[derive(Clone)]
pub struct HbonePool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    ca: Ca,
    connector: Connector,
    configs: Mutex<HashMap<Identity, Arc<ClientConfig>>>,
    conns: Mutex<HashMap<PoolKey, Arc<tokio::sync::Mutex<Vec<PooledConn>>>>>,
    opened: AtomicU64,
    handshakes: tls::Handshakes,
}

struct PooledConn {
    send: h2::client::SendRequest<Bytes>,
    active: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

/// Holds one of a pooled connection's stream slots until the tunnel is dropped.
struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn client_builder() -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_send_buffer_size(SEND_BUFFER)
        .initial_max_send_streams(MAX_STREAMS_PER_CONNECTION);
    b
}

impl HbonePool {
    /// A pool whose client certificates are trusted by (and whose servers are checked
    /// against) `ca`, opening sockets with `connector`.
    pub fn new(ca: &Ca, connector: Connector) -> Self {
        Self::counting(ca, connector, tls::Handshakes::default())
    }

    /// As [`HbonePool::new`], counting its TLS handshakes into `handshakes` (a proxy's).
    pub fn counting(ca: &Ca, connector: Connector, handshakes: tls::Handshakes) -> Self {
        HbonePool {
            inner: Arc::new(PoolInner {
                ca: ca.clone(),
                connector,
                configs: Mutex::default(),
                conns: Mutex::default(),
                opened: AtomicU64::new(0),
                handshakes,
            }),
        }
    }

    /// How many connections the pool has opened so far (for telemetry and tests).
    pub fn connections_opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// Opens a tunnel as `src` through the HBONE server at `dst` (a ztunnel's or waypoint's
    /// port 15008), which must authenticate as `expected_peer`, to `authority` (the target
    /// `ip:port`), sending `headers` (see [`tunnel_headers`]). Fails with
    /// [`HboneError::Refused`] when the server answers anything but 200.
    pub async fn connect(
        &self,
        src: &WorkloadCert,
        dst: SocketAddr,
        expected_peer: &Identity,
        authority: SocketAddr,
        headers: HeaderMap,
    ) -> Result<H2Stream, HboneError> {
        let key = (src.identity().clone(), dst, expected_peer.clone());
        let slot = {
            let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.entry(key).or_default().clone()
        };
        // A reused connection may turn out closed only when used; then retry once on a new one.
        let mut reused_failed = false;
        loop {
            let (send, stream_slot, reused) = self
                .checkout(&slot, src, dst, expected_peer, reused_failed)
                .await?;
            let mut req = Request::new(());
            *req.method_mut() = Method::CONNECT;
            // A SocketAddr always prints as a valid authority; the error arm is unreachable.
            *req.uri_mut() = http::Uri::from_maybe_shared(authority.to_string())
                .map_err(|_| HboneError::H2(h2::Reason::INTERNAL_ERROR.into()))?;
            *req.headers_mut() = headers.clone();
            let sent = async {
                let mut ready = send.ready().await?;
                ready.send_request(req, false)
            }
            .await;
            let (response, send_stream) = match sent {
                Ok(v) => v,
                Err(_) if reused && !reused_failed => {
                    reused_failed = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let response = response.await?;
            let status = response.status();
            if status != StatusCode::OK {
                return Err(HboneError::Refused {
                    authority,
                    status,
                    hint: refusal_hint(status),
                });
            }
            return Ok(H2Stream::new(
                send_stream,
                response.into_body(),
                Some(stream_slot),
            ));
        }
    }

    /// Picks a live connection with a free stream slot, or opens one. The per-key lock is
    /// held while dialing so concurrent first tunnels share one new connection.
    async fn checkout(
        &self,
        slot: &tokio::sync::Mutex<Vec<PooledConn>>,
        src: &WorkloadCert,
        dst: SocketAddr,
        expected_peer: &Identity,
        fresh_only: bool,
    ) -> Result<(h2::client::SendRequest<Bytes>, StreamSlot, bool), HboneError> {
        let mut conns = slot.lock().await;
        conns.retain(|c| !c.closed.load(Ordering::Acquire));
        if !fresh_only {
            for c in conns.iter() {
                let n = c.active.fetch_add(1, Ordering::AcqRel);
                if n < MAX_STREAMS_PER_CONNECTION {
                    return Ok((c.send.clone(), StreamSlot(c.active.clone()), true));
                }
                c.active.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let c = self.dial(src, dst, expected_peer).await?;
        c.active.fetch_add(1, Ordering::AcqRel);
        let out = (c.send.clone(), StreamSlot(c.active.clone()), false);
        conns.push(c);
        Ok(out)
    }

    fn config_for(&self, src: &WorkloadCert) -> Result<Arc<ClientConfig>, HboneError> {
        let mut configs = self.inner.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = configs.get(src.identity()) {
            return Ok(c.clone());
        }
        let c = tls::client_config(
            src,
            &self.inner.ca,
            &[ALPN_H2],
            false,
            &self.inner.handshakes,
        )?;
        configs.insert(src.identity().clone(), c.clone());
        Ok(c)
    }

    async fn dial(
        &self,
        src: &WorkloadCert,
        dst: SocketAddr,
        expected_peer: &Identity,
    ) -> Result<PooledConn, HboneError> {
        let config = self.config_for(src)?;
        let tcp = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, (self.inner.connector)(dst))
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            .map_err(|source| HboneError::Connect { dst, source })?;
        let tcp = BufReader::with_capacity(TLS_READ_BUFFER, tcp);
        let (mut tls, _) =
            tls::connect_io(tcp, dst, config, std::slice::from_ref(expected_peer)).await?;
        tls.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
        let alpn = tls.get_ref().1.alpn_protocol();
        if alpn != Some(ALPN_H2) {
            return Err(HboneError::NoH2 {
                got: alpn.map(|p| String::from_utf8_lossy(p).into_owned()),
            });
        }
        let (send, conn) = client_builder().handshake::<_, Bytes>(tls).await?;
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%dst, "HBONE client connection ended: {e}");
            }
            flag.store(true, Ordering::Release);
        });
        self.inner.opened.fetch_add(1, Ordering::Relaxed);
        Ok(PooledConn {
            send,
            active: Arc::new(AtomicUsize::new(0)),
            closed,
        })
    }
}

impl std::fmt::Debug for HbonePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HbonePool")
            .field("opened", &self.connections_opened())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_as_ztunnel_sends_them() {
        let b = Baggage {
            cluster: "Kubernetes".into(),
            namespace: "shop".into(),
            workload_kind: "deployment".into(),
            workload_name: "cart".into(),
            service_name: "cart".into(),
            service_version: "v1".into(),
        };
        let h = tunnel_headers("10.1.2.3".parse().expect("ip"), Some(&b));
        assert_eq!(h["forwarded"], "for=10.1.2.3");
        assert_eq!(
            h["baggage"],
            "k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.deployment.name=cart,service.name=cart,service.version=v1"
        );
        assert_eq!(Baggage::parse(h["baggage"].to_str().expect("ascii")), b);
        let h6 = tunnel_headers("::1".parse().expect("ip"), None);
        assert_eq!(h6["forwarded"], "for=\"[::1]\"");
        assert!(h6.get("baggage").is_none());
    }
}
