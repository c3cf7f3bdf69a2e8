//! The HBONE server after the mTLS handshake, fed frames from a peer that may send anything:
//! the input follows the HTTP/2 client preface (which the target writes first, so inputs start
//! at the frames) into the h2 server and `sim::mesh::hbone`'s CONNECT handling — the code
//! `hbone::serve` runs after its handshake, through `hbone::serve_h2_plaintext`.
//!
//! The handler decides by the CONNECT's port: 1 is refused (403), 2 answers 503; for other
//! ports the tunnel is accepted and then, by port modulo 3: dropped at once (0), echoed through
//! `H2Stream`'s reads and writes (1), or spliced to an echo with `hbone::splice_bytes` (2).
//! Everything runs on a current-thread runtime with paused time: once nothing can progress
//! the clock jumps, and 100 ms of virtual time end the connection, so a stalled peer costs
//! no wall time.

#![no_main]

use std::time::Duration;

use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use sim::mesh::Identity;
use sim::mesh::hbone::{self, ConnectRequest, HboneAccept};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes an echoing continuation moves at most.
const ECHO_LIMIT: usize = 256 * 1024;

async fn handle(req: ConnectRequest) -> Result<HboneAccept, StatusCode> {
    let _ = (&req.peer, &req.peer_addr, req.headers.len());
    match req.authority.port() {
        1 => Err(StatusCode::FORBIDDEN),
        2 => Err(StatusCode::SERVICE_UNAVAILABLE),
        p if p % 3 == 0 => Ok(HboneAccept::new(|tunnel| async move { drop(tunnel) })),
        p if p % 3 == 1 => Ok(HboneAccept::new(|mut tunnel| async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut moved = 0;
            while moved < ECHO_LIMIT {
                match tunnel.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tunnel.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        moved += n;
                    }
                }
            }
            let _ = tunnel.shutdown().await;
            let _ = (tunnel.bytes_sent(), tunnel.bytes_received());
        })),
        _ => Ok(HboneAccept::new(|tunnel| async move {
            let (near, mut far) = tokio::io::duplex(64 * 1024);
            let echo = tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(&mut far);
                let _ = tokio::io::copy(&mut (&mut r).take(ECHO_LIMIT as u64), &mut w).await;
                let _ = w.shutdown().await;
            });
            let _ = hbone::splice_bytes(tunnel, near, |_, _| {}).await;
            let _ = echo.await;
        })),
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(1024 * 1024);
        let (mut rx, mut tx) = tokio::io::split(client);
        let peer = Identity::new("fuzz", "client");
        let server = hbone::serve_h2_plaintext(server, peer, handle);
        let feed = async move {
            if tx.write_all(PREFACE).await.is_ok() {
                let _ = tx.write_all(data).await;
            }
            // Keep the write side open: the peer waits, as a real one would, until the
            // server closes or the time is up.
            std::future::pending::<()>().await;
        };
        let drain = async move {
            let mut sink = vec![0u8; 64 * 1024];
            while let Ok(n) = rx.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            tokio::select! {
                _ = server => {}
                _ = async { tokio::join!(feed, drain) } => {}
            }
        })
        .await;
    });
    // Dropping the runtime cancels the stream tasks still running.
    drop(rt);
});
