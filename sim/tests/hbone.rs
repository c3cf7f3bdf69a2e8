//! HBONE and mesh mTLS on loopback: tunnels through the pooled client to a TCP echo server,
//! what port 15008 refuses, pooling, and policy refusal.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sim::mesh::hbone::{self, ALPN_H2, Baggage, HboneAccept, HboneError, HbonePool};
use sim::mesh::tls::{self, TlsError};
use sim::mesh::{Ca, Identity, WorkloadCert};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

const DENIED_PORT: u16 = 1;
const LIMIT: Duration = Duration::from_secs(30);

struct Mesh {
    ca: Ca,
    client: WorkloadCert,
    server_id: Identity,
}

fn mesh() -> Mesh {
    let ca = Ca::new().expect("ca");
    let client = ca
        .issue(&Identity::new("shop", "cart"), sim::mesh::WORKLOAD_CERT_TTL)
        .expect("issue");
    Mesh {
        ca,
        client,
        server_id: Identity::new("istio-system", "ztunnel"),
    }
}

/// A 15008 server on loopback that records what it saw.
struct Server {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    handler_calls: Arc<AtomicUsize>,
    peers: Arc<Mutex<Vec<Identity>>>,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    errors: Arc<Mutex<Vec<String>>>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    handshakes: tls::Handshakes,
}

impl Server {
    async fn start(m: &Mesh) -> Server {
        let cert =
            m.ca.issue(&m.server_id, sim::mesh::WORKLOAD_CERT_TTL)
                .expect("issue");
        let handshakes = tls::Handshakes::default();
        let config = tls::server_config(&cert, &m.ca, &[ALPN_H2], &handshakes).expect("config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let s = Server {
            addr: listener.local_addr().expect("addr"),
            accepts: Arc::default(),
            handler_calls: Arc::default(),
            peers: Arc::default(),
            headers: Arc::default(),
            errors: Arc::default(),
            conns: Arc::default(),
            handshakes,
        };
        let (accepts, calls, peers, headers, errors, conns) = (
            s.accepts.clone(),
            s.handler_calls.clone(),
            s.peers.clone(),
            s.headers.clone(),
            s.errors.clone(),
            s.conns.clone(),
        );
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accepts.fetch_add(1, Ordering::SeqCst);
                let (calls, peers, headers, errors) = (
                    calls.clone(),
                    peers.clone(),
                    headers.clone(),
                    errors.clone(),
                );
                let handler = move |req: hbone::ConnectRequest| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    peers.lock().expect("lock").push(req.peer.clone());
                    headers.lock().expect("lock").push(req.headers.clone());
                    async move {
                        if req.authority.port() == DENIED_PORT {
                            return Err(StatusCode::FORBIDDEN);
                        }
                        let up = TcpStream::connect(req.authority)
                            .await
                            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
                        Ok(HboneAccept::splice(up, |_| {}))
                    }
                };
                let config = config.clone();
                let task = tokio::spawn(async move {
                    if let Err(e) = hbone::serve(tcp, config, handler).await {
                        errors.lock().expect("lock").push(format!("{e:?}"));
                    }
                });
                conns.lock().expect("lock").push(task.abort_handle());
            }
        });
        s
    }

    fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("lock").clone()
    }

    /// Waits for the server side of a refused connection to record its error.
    async fn wait_error(&self) -> String {
        for _ in 0..200 {
            if let Some(e) = self.errors().first() {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server recorded no error");
    }
}

async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Sends `data` through `stream`, closes the write side, and returns everything read back.
async fn echo_through<S>(stream: S, data: Vec<u8>) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.expect("write");
        w.shutdown().await.expect("shutdown");
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.expect("read");
    writer.await.expect("writer");
    back
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn tunnel_round_trips_bytes_and_carries_identity() {
    tokio::time::timeout(LIMIT, async {
        let m = mesh();
        let server = Server::start(&m).await;
        let echo = echo_server().await;
        let pool = HbonePool::new(&m.ca, hbone::plain_connector());
        let baggage = Baggage {
            namespace: "shop".into(),
            workload_kind: "deployment".into(),
            workload_name: "cart".into(),
            ..Baggage::default()
        };
        for n in [1, 1024, 8 * 1024 * 1024] {
            let headers = hbone::tunnel_headers("127.0.0.1".parse().expect("ip"), Some(&baggage));
            let s = pool
                .connect(&m.client, server.addr, &m.server_id, echo, headers)
                .await
                .expect("connect");
            let data = pattern(n);
            let back = echo_through(s, data.clone()).await;
            assert_eq!(back.len(), n);
            assert!(back == data, "{n} bytes came back altered");
        }
        let peers = server.peers.lock().expect("lock").clone();
        assert_eq!(peers, vec![m.client.identity().clone(); 3]);
        let headers = server.headers.lock().expect("lock")[0].clone();
        assert_eq!(headers["forwarded"], "for=127.0.0.1");
        let b = Baggage::parse(headers["baggage"].to_str().expect("ascii"));
        assert_eq!(b.workload_name, "cart");
        assert_eq!(pool.connections_opened(), 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn client_rejects_a_server_with_an_unexpected_identity() {
    let m = mesh();
    let server = Server::start(&m).await;
    let pool = HbonePool::new(&m.ca, hbone::plain_connector());
    let wrong = Identity::new("istio-system", "waypoint");
    let err = pool
        .connect(
            &m.client,
            server.addr,
            &wrong,
            server.addr,
            HeaderMap::new(),
        )
        .await
        .expect_err("must not trust the wrong server");
    match &err {
        HboneError::Tls(TlsError::UnexpectedPeer { got, .. }) => assert_eq!(got, &m.server_id),
        other => panic!("wrong error: {other:?}"),
    }
    assert!(err.to_string().contains("was expected"), "{err}");
    assert_eq!(server.handler_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn handler_refusal_is_a_typed_error() {
    let m = mesh();
    let server = Server::start(&m).await;
    let pool = HbonePool::new(&m.ca, hbone::plain_connector());
    let denied: SocketAddr = ([127, 0, 0, 1], DENIED_PORT).into();
    let err = pool
        .connect(
            &m.client,
            server.addr,
            &m.server_id,
            denied,
            HeaderMap::new(),
        )
        .await
        .expect_err("the handler refuses");
    assert_eq!(err.refused_status(), Some(StatusCode::FORBIDDEN));
    let msg = err.to_string();
    assert!(
        msg.contains("refused") && msg.contains("AuthorizationPolicy"),
        "{msg}"
    );
    // The refusal is per stream: the connection stays usable.
    let echo = echo_server().await;
    let s = pool
        .connect(&m.client, server.addr, &m.server_id, echo, HeaderMap::new())
        .await
        .expect("connect after refusal");
    assert_eq!(echo_through(s, b"ok".to_vec()).await, b"ok");
    assert_eq!(server.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pool_reuses_one_connection_per_source_identity() {
    tokio::time::timeout(LIMIT, async {
        let m = mesh();
        let server = Server::start(&m).await;
        let echo = echo_server().await;
        let pool = HbonePool::new(&m.ca, hbone::plain_connector());
        for i in 0..50u8 {
            let s = pool
                .connect(&m.client, server.addr, &m.server_id, echo, HeaderMap::new())
                .await
                .expect("connect");
            assert_eq!(echo_through(s, vec![i; 10]).await, vec![i; 10]);
        }
        assert_eq!(server.accepts.load(Ordering::SeqCst), 1);
        let other =
            m.ca.issue(
                &Identity::new("shop", "checkout"),
                sim::mesh::WORKLOAD_CERT_TTL,
            )
            .expect("issue");
        let s = pool
            .connect(&other, server.addr, &m.server_id, echo, HeaderMap::new())
            .await
            .expect("connect");
        assert_eq!(echo_through(s, b"x".to_vec()).await, b"x");
        assert_eq!(server.accepts.load(Ordering::SeqCst), 2);
        let peers = server.peers.lock().expect("lock").clone();
        assert_eq!(peers.last(), Some(other.identity()));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn pool_opens_another_connection_beyond_the_stream_limit() {
    tokio::time::timeout(LIMIT, async {
        let m = mesh();
        let server = Server::start(&m).await;
        let echo = echo_server().await;
        let pool = HbonePool::new(&m.ca, hbone::plain_connector());
        let mut open = Vec::new();
        for _ in 0..hbone::MAX_STREAMS_PER_CONNECTION + 1 {
            open.push(
                pool.connect(&m.client, server.addr, &m.server_id, echo, HeaderMap::new())
                    .await
                    .expect("connect"),
            );
        }
        assert_eq!(server.accepts.load(Ordering::SeqCst), 2);
        // Closing tunnels frees slots on the first connection again.
        open.clear();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = pool
            .connect(&m.client, server.addr, &m.server_id, echo, HeaderMap::new())
            .await
            .expect("connect");
        assert_eq!(echo_through(s, b"y".to_vec()).await, b"y");
        assert_eq!(server.accepts.load(Ordering::SeqCst), 2);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn pool_reconnects_after_the_server_closes() {
    tokio::time::timeout(LIMIT, async {
        let m = mesh();
        let server = Server::start(&m).await;
        let echo = echo_server().await;
        let pool = HbonePool::new(&m.ca, hbone::plain_connector());
        let s = pool
            .connect(&m.client, server.addr, &m.server_id, echo, HeaderMap::new())
            .await
            .expect("connect");
        assert_eq!(echo_through(s, b"a".to_vec()).await, b"a");
        for c in server.conns.lock().expect("lock").drain(..) {
            c.abort();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = pool
            .connect(&m.client, server.addr, &m.server_id, echo, HeaderMap::new())
            .await
            .expect("connect after the server closed");
        assert_eq!(echo_through(s, b"b".to_vec()).await, b"b");
        assert_eq!(server.accepts.load(Ordering::SeqCst), 2);
        assert_eq!(pool.connections_opened(), 2);
    })
    .await
    .expect("test timed out");
}

// ---- what 15008 refuses -------------------------------------------------------------------

/// Accepts any server certificate: the refusal tests are about what the *server* does.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn raw_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
    cert: Option<&WorkloadCert>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyServer));
    let mut c = match cert {
        Some(c) => b
            .with_client_auth_cert(c.chain().to_vec(), c.key())
            .expect("cert"),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

/// Connects with `config` and asserts the server ends the connection without serving it:
/// either the handshake fails, or (TLS 1.3 clients finish before the server judges their
/// certificate) the first read sees an error or EOF.
async fn assert_refused(server: &Server, config: Arc<rustls::ClientConfig>) {
    let tcp = TcpStream::connect(server.addr).await.expect("tcp");
    let name = ServerName::IpAddress(server.addr.ip().into());
    if let Ok(mut tls) = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
    {
        let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .expect("server must close, not hang");
        assert!(matches!(r, Ok(0) | Err(_)), "server answered: {r:?}");
    }
}

#[tokio::test]
async fn refuses_plaintext_http1() {
    let m = mesh();
    let server = Server::start(&m).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("tcp");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut back = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut back))
        .await
        .expect("server must close, not hang");
    assert!(!back.starts_with(b"HTTP/"), "answered in plaintext");
    let e = server.wait_error().await;
    assert!(
        e.contains("Handshake") && e.contains("InvalidContentType"),
        "{e}"
    );
    assert_eq!(server.handler_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn refuses_a_client_without_a_certificate() {
    let m = mesh();
    let server = Server::start(&m).await;
    assert_refused(
        &server,
        raw_client(&[&rustls::version::TLS13], None, &[ALPN_H2]),
    )
    .await;
    let e = server.wait_error().await;
    assert!(
        e.contains("Handshake") && e.contains("NoCertificatesPresented"),
        "{e}"
    );
}

#[tokio::test]
async fn refuses_a_certificate_from_another_ca() {
    let m = mesh();
    let server = Server::start(&m).await;
    let other_ca = Ca::new().expect("ca");
    let foreign = other_ca
        .issue(m.client.identity(), sim::mesh::WORKLOAD_CERT_TTL)
        .expect("issue");
    let config =
        tls::client_config(&foreign, &m.ca, &[ALPN_H2], true, &Default::default()).expect("config");
    assert_refused(&server, config).await;
    let e = server.wait_error().await;
    assert!(
        e.contains("Handshake") && e.contains("InvalidCertificate"),
        "{e}"
    );
}

/// A workload certificate past `notAfter` fails the handshake at the peer, which checks the
/// validity period as any X.509 verifier does; once renewed in place, the same config works.
#[tokio::test]
async fn refuses_an_expired_certificate_and_takes_its_renewal() {
    let m = mesh();
    let server = Server::start(&m).await;
    let short =
        m.ca.issue(m.client.identity(), Duration::from_secs(1))
            .expect("issue");
    let config =
        tls::client_config(&short, &m.ca, &[ALPN_H2], false, &Default::default()).expect("config");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_refused(&server, config.clone()).await;
    let e = server.wait_error().await;
    assert!(e.contains("Handshake") && e.contains("Expired"), "{e}");
    m.ca.renew(&short).expect("renew");
    let tcp = TcpStream::connect(server.addr).await.expect("tcp");
    let name = ServerName::IpAddress(server.addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await;
    assert!(tls.is_ok(), "the renewed certificate is presented: {tls:?}");
}

#[tokio::test]
async fn refuses_alpn_http1_only_and_no_alpn() {
    let m = mesh();
    let server = Server::start(&m).await;
    let config = tls::client_config(&m.client, &m.ca, &[b"http/1.1"], true, &Default::default())
        .expect("config");
    assert_refused(&server, config).await;
    let e = server.wait_error().await;
    assert!(
        e.contains("Handshake") && e.contains("NoApplicationProtocol"),
        "{e}"
    );

    // Without any ALPN the handshake succeeds, and the server then closes: no h2.
    let server = Server::start(&m).await;
    let config =
        tls::client_config(&m.client, &m.ca, &[], true, &Default::default()).expect("config");
    assert_refused(&server, config).await;
    let e = server.wait_error().await;
    assert!(e.contains("NoH2"), "{e}");
}

#[tokio::test]
async fn refuses_tls12() {
    let m = mesh();
    let server = Server::start(&m).await;
    let config = raw_client(&[&rustls::version::TLS12], Some(&m.client), &[ALPN_H2]);
    assert_refused(&server, config).await;
    let e = server.wait_error().await;
    assert!(
        e.contains("Handshake") && e.contains("Tls12NotOfferedOrEnabled"),
        "{e}"
    );
}

/// A mesh client speaking raw h2, for requests the pool never makes.
async fn raw_h2(m: &Mesh, server: &Server) -> h2::client::SendRequest<Bytes> {
    let config = tls::client_config(&m.client, &m.ca, &[ALPN_H2], true, &Default::default())
        .expect("config");
    raw_h2_with(server, config).await
}

async fn raw_h2_with(
    server: &Server,
    config: Arc<rustls::ClientConfig>,
) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(server.addr).await.expect("tcp");
    let (tls, _) = tls::connect(tcp, config, &[]).await.expect("tls");
    let (send, conn) = h2::client::handshake(tls).await.expect("h2");
    tokio::spawn(conn);
    send
}

async fn status_of(send: &h2::client::SendRequest<Bytes>, req: Request<()>) -> StatusCode {
    let mut ready = send.clone().ready().await.expect("ready");
    let (resp, _body) = ready.send_request(req, true).expect("send");
    resp.await.expect("response").status()
}

#[tokio::test]
async fn non_connect_is_405_and_bad_authority_is_400() {
    let m = mesh();
    let server = Server::start(&m).await;
    let send = raw_h2(&m, &server).await;
    let get = Request::builder()
        .method(Method::GET)
        .uri("https://127.0.0.1:8080/")
        .body(())
        .expect("req");
    assert_eq!(status_of(&send, get).await, StatusCode::METHOD_NOT_ALLOWED);
    let connect = Request::builder()
        .method(Method::CONNECT)
        .uri("example.com:80")
        .body(())
        .expect("req");
    assert_eq!(status_of(&send, connect).await, StatusCode::BAD_REQUEST);
    assert_eq!(server.handler_calls.load(Ordering::SeqCst), 0);
}

// ---- plain mTLS (sidecar model) ----------------------------------------------------------

#[tokio::test]
async fn plain_mtls_accept_and_connect() {
    let m = mesh();
    let server_cert =
        m.ca.issue(&m.server_id, sim::mesh::WORKLOAD_CERT_TTL)
            .expect("issue");
    let server_cfg =
        tls::server_config(&server_cert, &m.ca, &[b"http/1.1"], &Default::default()).expect("cfg");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let srv = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.expect("accept");
            if let Ok((mut tls, peer)) = tls::accept(tcp, server_cfg.clone()).await {
                seen.push(peer);
                let mut b = [0u8; 5];
                if tls.read_exact(&mut b).await.is_ok() {
                    let _ = tls.write_all(&b).await;
                    let _ = tls.shutdown().await;
                }
            }
        }
        seen
    });
    let cfg = tls::client_config(&m.client, &m.ca, &[b"http/1.1"], true, &Default::default())
        .expect("cfg");
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let (mut s, peer) = tls::connect(tcp, cfg.clone(), std::slice::from_ref(&m.server_id))
        .await
        .expect("connect");
    assert_eq!(peer, m.server_id);
    s.write_all(b"hello").await.expect("write");
    let mut b = [0u8; 5];
    s.read_exact(&mut b).await.expect("read");
    assert_eq!(&b, b"hello");

    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let wrong = [
        Identity::new("other", "svc"),
        Identity::new("other", "svc2"),
    ];
    let err = tls::connect(tcp, cfg, &wrong)
        .await
        .expect_err("wrong peer");
    assert!(matches!(err, TlsError::UnexpectedPeer { .. }), "{err:?}");
    let seen = srv.await.expect("server");
    assert_eq!(seen[0], *m.client.identity());
}

/// What ztunnel's outbound does with a captured connection: `splice_bytes` between it and a
/// tunnel. Request/response messages of mixed sizes (which read into what is left of earlier
/// allocations) and a bulk message (which grows the reads) each come back whole and in order.
#[tokio::test]
async fn splice_bytes_carries_request_response_and_bulk_in_order() {
    tokio::time::timeout(LIMIT, async {
        let m = mesh();
        let server = Server::start(&m).await;
        let echo = echo_server().await;
        let pool = HbonePool::new(&m.ca, hbone::plain_connector());
        let app_side = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let app_addr = app_side.local_addr().expect("addr");
        let mut app = TcpStream::connect(app_addr).await.expect("connect");
        let (captured, _) = app_side.accept().await.expect("accept");
        let headers = hbone::tunnel_headers("127.0.0.1".parse().expect("ip"), None);
        let tunnel = pool
            .connect(&m.client, server.addr, &m.server_id, echo, headers)
            .await
            .expect("connect");
        let spliced = Arc::new(AtomicUsize::new(0));
        let counted = spliced.clone();
        let splice = tokio::spawn(hbone::splice_bytes(tunnel, captured, move |_, n| {
            counted.fetch_add(n, Ordering::SeqCst);
        }));

        let mut sizes = vec![1024; 70];
        sizes.extend([20 * 1024, 1, 3 * 1024 * 1024, 1024, 1024, 63 * 1024, 1024]);
        for (i, &n) in sizes.iter().enumerate() {
            let msg: Vec<u8> = pattern(n + i).split_off(i);
            let mut back = vec![0u8; n];
            let (mut r, mut w) = app.split();
            // Both at once: a bulk message would not fit in the buffers along the way.
            let (wrote, read) = tokio::join!(w.write_all(&msg), r.read_exact(&mut back));
            wrote.expect("write");
            read.expect("read");
            assert!(back == msg, "message {i} ({n} bytes) came back altered");
        }
        app.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        app.read_to_end(&mut rest).await.expect("read the close");
        assert!(rest.is_empty(), "nothing beyond the echoes");
        let t = splice.await.expect("splice task");
        let total: u64 = sizes.iter().map(|&n| n as u64).sum();
        assert_eq!((t.to_tunnel, t.from_tunnel), (total, total));
        assert_eq!(spliced.load(Ordering::SeqCst) as u64, 2 * total);
    })
    .await
    .expect("test timed out");
}

/// Full TLS handshakes are counted on both sides, once per connection: the pool reuses one
/// connection for many tunnels and never resumes (ztunnel turns resumption off, istio/ztunnel
/// `src/tls/certificate.rs` `Resumption::disabled()`), while a client that resumes a session
/// (Envoy's upstream TLS does by default) presents no certificate the second time.
#[tokio::test]
async fn full_tls_handshakes_are_counted_once_per_connection_and_not_when_resumed() {
    tokio::time::timeout(LIMIT, async {
        let m = mesh();
        let server = Server::start(&m).await;
        let echo = echo_server().await;
        let pooled = tls::Handshakes::default();
        let pool = HbonePool::counting(&m.ca, hbone::plain_connector(), pooled.clone());
        for _ in 0..3 {
            let headers = hbone::tunnel_headers("127.0.0.1".parse().expect("ip"), None);
            let s = pool
                .connect(&m.client, server.addr, &m.server_id, echo, headers)
                .await
                .expect("connect");
            assert_eq!(echo_through(s, pattern(10)).await.len(), 10);
        }
        assert_eq!(pooled.load(Ordering::SeqCst), 1, "one pooled connection");
        assert_eq!(server.handshakes.load(Ordering::SeqCst), 1);

        let resuming = tls::Handshakes::default();
        let config =
            tls::client_config(&m.client, &m.ca, &[ALPN_H2], true, &resuming).expect("config");
        let get = || {
            Request::builder()
                .method(Method::GET)
                .uri("https://127.0.0.1:8080/")
                .body(())
                .expect("req")
        };
        // A first request reads the server's session ticket before the second connection.
        let first = raw_h2_with(&server, config.clone()).await;
        assert_eq!(
            status_of(&first, get()).await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        let second = raw_h2_with(&server, config).await;
        assert_eq!(
            status_of(&second, get()).await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(resuming.load(Ordering::SeqCst), 1, "the second one resumed");
        assert_eq!(server.handshakes.load(Ordering::SeqCst), 2);
        assert_eq!(
            server.accepts.load(Ordering::SeqCst),
            3,
            "three connections in all"
        );
    })
    .await
    .expect("test timed out");
}
