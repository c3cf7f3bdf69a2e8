//! Writes the seed corpus of the `hbone_server` target: what a real h2 client (the `h2`
//! crate, as `HbonePool` uses it) sends to `hbone::serve_h2_plaintext` for a few exchanges,
//! without the client preface (the target writes that itself).
//!
//! `cargo run --example hbone_seeds -- corpus/hbone_server` (from `fuzz/`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use sim::mesh::Identity;
use sim::mesh::hbone::{self, ConnectRequest, HboneAccept};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Passes everything through and keeps a copy of what was written.
struct Recorder<T> {
    inner: T,
    log: Arc<Mutex<Vec<u8>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Recorder<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Recorder<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.log.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn handle(req: ConnectRequest) -> Result<HboneAccept, StatusCode> {
    match req.authority.port() {
        1 => Err(StatusCode::FORBIDDEN),
        _ => Ok(HboneAccept::new(|mut tunnel| async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = tunnel.read(&mut buf).await {
                if n == 0 || tunnel.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = tunnel.shutdown().await;
        })),
    }
}

/// One stream of an exchange: method, authority, and the payload sent (then END_STREAM).
struct Stream {
    method: Method,
    authority: &'static str,
    payload: &'static [u8],
}

async fn exchange(streams: &[Stream]) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(1024 * 1024);
    let log = Arc::new(Mutex::new(Vec::new()));
    let io = Recorder {
        inner: client,
        log: log.clone(),
    };
    let srv = tokio::spawn(hbone::serve_h2_plaintext(
        server,
        Identity::new("fuzz", "client"),
        handle,
    ));
    let (send, conn) = h2::client::handshake(io).await.expect("h2 handshake");
    let conn = tokio::spawn(conn);
    for s in streams {
        let mut send = send.clone().ready().await.expect("ready");
        let mut req = Request::new(());
        *req.method_mut() = s.method.clone();
        *req.uri_mut() = if s.method == Method::CONNECT {
            http::Uri::from_static(s.authority)
        } else {
            format!("http://{}/", s.authority).parse().expect("uri")
        };
        req.headers_mut()
            .insert("forwarded", "for=10.0.0.9".parse().expect("value"));
        let (resp, mut body) = send.send_request(req, false).expect("send");
        body.send_data(Bytes::from_static(s.payload), true)
            .expect("data");
        if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(2), resp).await {
            let mut recv = resp.into_body();
            while let Ok(Some(Ok(d))) =
                tokio::time::timeout(Duration::from_millis(200), recv.data()).await
            {
                let _ = recv.flow_control().release_capacity(d.len());
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(send);
    let _ = tokio::time::timeout(Duration::from_millis(200), conn).await;
    srv.abort();
    let bytes = log.lock().unwrap().clone();
    assert!(
        bytes.starts_with(PREFACE),
        "the client starts with the preface"
    );
    bytes[PREFACE.len()..].to_vec()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "corpus/hbone_server".into());
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let cases: Vec<(&str, Vec<Stream>)> = vec![
        (
            "connect-echo",
            vec![Stream {
                method: Method::CONNECT,
                authority: "10.0.0.1:8080",
                payload: b"hello through the tunnel",
            }],
        ),
        (
            "connect-refused",
            vec![Stream {
                method: Method::CONNECT,
                authority: "10.0.0.1:1",
                payload: b"",
            }],
        ),
        (
            "connect-ipv6",
            vec![Stream {
                method: Method::CONNECT,
                authority: "[fd00::1]:9092",
                payload: b"x",
            }],
        ),
        (
            "connect-hostname",
            vec![Stream {
                method: Method::CONNECT,
                authority: "payment.production:80",
                payload: b"",
            }],
        ),
        (
            "get-not-allowed",
            vec![Stream {
                method: Method::GET,
                authority: "10.0.0.1:80",
                payload: b"",
            }],
        ),
        (
            "three-streams",
            vec![
                Stream {
                    method: Method::CONNECT,
                    authority: "10.0.0.1:8080",
                    payload: b"one",
                },
                Stream {
                    method: Method::CONNECT,
                    authority: "10.0.0.2:8081",
                    payload: b"two",
                },
                Stream {
                    method: Method::CONNECT,
                    authority: "10.0.0.3:8082",
                    payload: b"three",
                },
            ],
        ),
    ];
    for (name, streams) in cases {
        let bytes = exchange(&streams).await;
        let path = format!("{dir}/{name}");
        std::fs::write(&path, &bytes).expect("write seed");
        println!("{path}: {} bytes", bytes.len());
    }
}
