//! The servers themselves.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument as _;

use super::HttpEchoSpec;
use crate::component::Counters;

/// Request header that asks the echo server for a response body of N bytes.
pub const ECHO_BYTES_HEADER: &str = "x-echo-bytes";
/// Response header naming the pod that answered (how users see load balancing at work).
pub const POD_HEADER: &str = "x-meshsim-pod";
/// Largest body the echo server will make on request (`x-echo-bytes`).
pub const MAX_ECHO_BYTES: u64 = 64 << 20;

/// Who an app replica is; shown in its responses.
#[derive(Debug, Clone)]
pub struct AppIdentity {
    pub pod: String,
    pub namespace: String,
    pub workload: String,
}

/// A body of exactly `len` bytes that starts with a line naming the pod, so `curl` shows who
/// answered, padded with a readable filler and ending in a newline.
pub fn echo_body(id: &AppIdentity, len: usize) -> Bytes {
    let head = format!("hello from {} ({}/{})\n", id.pod, id.namespace, id.workload);
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(head.as_bytes());
    while body.len() < len {
        body.extend_from_slice(b"meshsim-echo ");
    }
    body.truncate(len);
    if len > 0 {
        body[len - 1] = b'\n';
    }
    Bytes::from(body)
}

struct EchoState {
    id: AppIdentity,
    counters: Arc<Counters>,
    status: StatusCode,
    body: Bytes,
    service_time: std::time::Duration,
}

async fn handle(
    state: Arc<EchoState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let wanted = req
        .headers()
        .get(ECHO_BYTES_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|n| n.min(MAX_ECHO_BYTES) as usize);
    // The request body is read whole (as a real service would) and dropped.
    let _ = req.into_body().collect().await;
    state.counters.request();
    if !state.service_time.is_zero() {
        tokio::time::sleep(state.service_time).await;
    }
    let body = match wanted {
        Some(n) if n != state.body.len() => echo_body(&state.id, n),
        _ => state.body.clone(),
    };
    let resp = Response::builder()
        .status(state.status)
        .header(POD_HEADER, state.id.pod.as_str())
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    Ok(resp)
}

/// Serves HTTP/1.1 (keep-alive) on `listener` until the runtime stops.
pub async fn serve_http(
    listener: TcpListener,
    spec: HttpEchoSpec,
    id: AppIdentity,
    counters: Arc<Counters>,
) {
    let state = Arc::new(EchoState {
        counters,
        body: echo_body(&id, spec.response_bytes as usize),
        status: StatusCode::from_u16(spec.status).unwrap_or(StatusCode::OK),
        service_time: spec.service_time,
        id,
    });
    loop {
        let (stream, peer) =
            crate::accept::next(&listener, "app", Some(&state.counters.accept_errors)).await;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(
            async move {
                let svc = service_fn(move |req| handle(state.clone(), req));
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "http connection ended with an error");
                }
            }
            .instrument(tracing::debug_span!("conn", %peer)),
        );
    }
}

/// Echoes every byte back on the connection it came from, counting each read it echoes as
/// one message.
pub async fn serve_tcp_echo(listener: TcpListener, counters: Arc<Counters>) {
    let c = counters.clone();
    serve_tcp(
        listener,
        counters,
        move |mut s: TcpStream, _peer: SocketAddr| {
            let c = c.clone();
            async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    c.request();
                }
                let _ = s.shutdown().await;
            }
        },
    )
    .await
}

/// Reads and discards everything (the target of a bulk stream).
pub async fn serve_tcp_sink(listener: TcpListener, counters: Arc<Counters>) {
    serve_tcp(
        listener,
        counters,
        |mut s: TcpStream, _peer: SocketAddr| async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        },
    )
    .await
}

async fn serve_tcp<F, Fut>(listener: TcpListener, counters: Arc<Counters>, f: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, peer) =
            crate::accept::next(&listener, "app", Some(&counters.accept_errors)).await;
        let _ = stream.set_nodelay(true);
        tokio::spawn(f(stream, peer));
    }
}
