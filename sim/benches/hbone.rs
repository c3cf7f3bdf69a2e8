//! HBONE against direct TCP on loopback:
//! `cargo bench -p meshsim-sim --bench hbone [-- --quick]`.
//!
//! - `bulk/*`: 64 MiB one way to a sink that acknowledges the byte count at EOF;
//! - `rr_1k/*`: 1 KiB request, 1 KiB echoed back, on an already open connection or tunnel.
//!
//! The HBONE path is client → tunnel (mTLS + h2 on the pool's connection) → HBONE server →
//! TCP → target, so it includes one extra TCP hop, the TLS crypto and the h2 framing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, StatusCode};
use sim::mesh::hbone::{self, ALPN_H2, HboneAccept, HbonePool};
use sim::mesh::{Ca, Identity, WorkloadCert, tls};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const BULK: usize = 64 * 1024 * 1024;
const MSG: usize = 1024;

struct Setup {
    rt: Runtime,
    sink: SocketAddr,
    echo: SocketAddr,
    hbone: SocketAddr,
    pool: HbonePool,
    client: WorkloadCert,
    server_id: Identity,
}

async fn serve_tcp(f: fn(TcpStream) -> futures::future::BoxFuture<'static, ()>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(f(s));
        }
    });
    addr
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ca = Ca::new().expect("ca");
    let client = ca
        .issue(
            &Identity::new("bench", "client"),
            sim::mesh::WORKLOAD_CERT_TTL,
        )
        .expect("issue");
    let server_id = Identity::new("istio-system", "ztunnel");
    let server_cert = ca
        .issue(&server_id, sim::mesh::WORKLOAD_CERT_TTL)
        .expect("issue");
    let (sink, echo, hbone) = rt.block_on(async {
        let sink = serve_tcp(|mut s| {
            Box::pin(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut n = 0u64;
                while let Ok(k @ 1..) = s.read(&mut buf).await {
                    n += k as u64;
                }
                let _ = s.write_all(&n.to_be_bytes()).await;
            })
        })
        .await;
        let echo = serve_tcp(|s| {
            Box::pin(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            })
        })
        .await;
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hbone = l.local_addr().expect("addr");
        let config =
            tls::server_config(&server_cert, &ca, &[ALPN_H2], &Default::default()).expect("config");
        tokio::spawn(hbone::serve_listener(l, config, None, |req| async move {
            let up = TcpStream::connect(req.authority)
                .await
                .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
            let _ = up.set_nodelay(true);
            Ok(HboneAccept::splice(up, |_| {}))
        }));
        (sink, echo, hbone)
    });
    Setup {
        rt,
        sink,
        echo,
        hbone,
        pool: HbonePool::new(&ca, hbone::plain_connector()),
        client,
        server_id,
    }
}

impl Setup {
    async fn tunnel(&self, to: SocketAddr) -> hbone::H2Stream {
        self.pool
            .connect(
                &self.client,
                self.hbone,
                &self.server_id,
                to,
                HeaderMap::new(),
            )
            .await
            .expect("tunnel")
    }
}

async fn push_bulk<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, chunk: &[u8]) {
    let mut left = BULK;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).await.expect("write");
        left -= n;
    }
    s.shutdown().await.expect("shutdown");
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack).await.expect("ack");
    assert_eq!(u64::from_be_bytes(ack), BULK as u64);
}

async fn round_trips<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, iters: u64) -> Duration {
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    let t = Instant::now();
    for _ in 0..iters {
        s.write_all(&msg).await.expect("write");
        s.read_exact(&mut back).await.expect("read");
    }
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let chunk = vec![0x5au8; 256 * 1024];

    let mut g = c.benchmark_group("bulk");
    g.throughput(Throughput::Bytes(BULK as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    g.bench_function("direct_tcp", |b| {
        b.iter(|| {
            s.rt.block_on(async {
                let tcp = TcpStream::connect(s.sink).await.expect("tcp");
                push_bulk(tcp, &chunk).await;
            })
        })
    });
    g.bench_function("hbone", |b| {
        b.iter(|| {
            s.rt.block_on(async {
                let t = s.tunnel(s.sink).await;
                push_bulk(t, &chunk).await;
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rr_1k");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let mut tcp = s.rt.block_on(async {
        let t = TcpStream::connect(s.echo).await.expect("tcp");
        t.set_nodelay(true).expect("nodelay");
        t
    });
    g.bench_function("direct_tcp", |b| {
        b.iter_custom(|iters| s.rt.block_on(round_trips(&mut tcp, iters)))
    });
    let mut tunnel = s.rt.block_on(s.tunnel(s.echo));
    g.bench_function("hbone", |b| {
        b.iter_custom(|iters| s.rt.block_on(round_trips(&mut tunnel, iters)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
