//! The models' hot paths counted in instructions under callgrind (gungraun): the counts repeat
//! exactly on a noisy host, where wall time does not, so a change of 1% is a change.
//!
//! ```sh
//! apt-get install valgrind && cargo install gungraun-runner --version 0.20.0
//! cargo bench -p meshsim-sim --bench deterministic -- --save-baseline=main
//! # … change something …
//! cargo bench -p meshsim-sim --bench deterministic -- --baseline=main --callgrind-limits='ir=1%'
//! ```
//!
//! Exit code 3 means a bench regressed beyond the limit. Each bench runs its path many times
//! per call, so one call's counts are per-request figures times that many:
//!
//! - `ztunnel_l4/*`: ztunnel's L4 authorization of 100 connections (the policies that select
//!   the destination, against the peer's identity and address);
//! - `jwt/*`: 100 verifications of an ES256 token against a RequestAuthentication issuer;
//! - `telemetry/*`: 100 requests recorded in Istio's standard metrics (counter and histogram);
//! - `sidecar_http/*`: 100 HTTP/1.1 requests on one connection through what a sidecar does
//!   before the app: hyper's parse, Envoy's path normalization, an L7 policy;
//! - `hbone/*`: one HBONE connection set up over an in-memory duplex (mTLS handshake, h2, one
//!   CONNECT accepted by meshsim's HBONE server) and 64 KiB framed through it.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use gungraun::{library_benchmark, library_benchmark_group, main};
use scenario::jwt::{Issuer, Jwks, SigningKey};
use scenario::manifest::AuthorizationPolicy;
use sim::mesh::{Ca, Identity};
use sim::proxy::http::{Peer, labels, record_request};
use sim::proxy::telemetry::ProxyMetrics;

const N: usize = 100;

fn policies(rules: usize) -> Vec<AuthorizationPolicy> {
    // An ALLOW with `rules` rules, each naming another principal and port; the peer matches
    // only the last, so every rule is looked at.
    let mut rs = String::new();
    for i in 0..rules {
        rs.push_str(&format!(
            "  - from: [{{source: {{principals: [\"cluster.local/ns/shop/sa/client-{i}\"]}}}}]\n    to: [{{operation: {{ports: [\"{}\"]}}}}]\n",
            8000 + i
        ));
    }
    let yaml = format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: allow, namespace: shop}}\nspec:\n  selector: {{matchLabels: {{app: echo}}}}\n  action: ALLOW\n  rules:\n{rs}"
    );
    vec![serde_saphyr::from_str(&yaml).expect("policy")]
}

fn l4_setup(rules: usize) -> (Vec<AuthorizationPolicy>, Identity, u16) {
    (
        policies(rules),
        Identity::new("shop", format!("client-{}", rules - 1)),
        8000 + rules as u16 - 1,
    )
}

#[library_benchmark]
#[bench::one_rule(setup = l4_setup, args = (1))]
#[bench::twenty_rules(setup = l4_setup, args = (20))]
fn ztunnel_l4((policies, peer, port): (Vec<AuthorizationPolicy>, Identity, u16)) -> usize {
    let mut allowed = 0;
    for k in 0..N {
        let src = IpAddr::V4(Ipv4Addr::new(10, 1, 0, (k % 250) as u8 + 2));
        let v = sim::proxy::ztunnel::l4_verdict(
            &policies,
            Some(&peer),
            Some(src),
            IpAddr::V4(Ipv4Addr::new(10, 2, 0, 2)),
            port,
        );
        allowed += usize::from(v.decision == sim::mesh::policy::Decision::Allow);
    }
    assert_eq!(allowed, N, "the bench's peer is allowed");
    allowed
}

fn jwt_setup() -> (String, Vec<Issuer>) {
    let (key, _) = SigningKey::generate("bench").expect("key");
    let issuer = "https://issuer.bench";
    let claims: BTreeMap<String, serde_json::Value> = [
        ("iss", serde_json::json!(issuer)),
        ("sub", serde_json::json!("user-1")),
        ("aud", serde_json::json!("shop")),
        ("exp", serde_json::json!(4_000_000_000u64)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let token = key.mint(&claims).expect("token");
    let jwks = Jwks::parse(&key.jwks_json()).expect("jwks");
    (token, vec![Issuer::new(issuer, vec!["shop".into()], jwks)])
}

#[library_benchmark]
#[bench::es256(setup = jwt_setup)]
fn jwt((token, issuers): (String, Vec<Issuer>)) -> usize {
    let mut ok = 0;
    for _ in 0..N {
        ok +=
            usize::from(scenario::jwt::verify(black_box(&token), &issuers, 1_900_000_000).is_ok());
    }
    assert_eq!(ok, N, "the bench's token verifies");
    ok
}

fn telemetry_setup() -> (ProxyMetrics, Vec<(&'static str, String)>) {
    let peer = |w: &str| Peer {
        workload: w.into(),
        namespace: "shop".into(),
        principal: format!("spiffe://cluster.local/ns/shop/sa/{w}"),
    };
    let ok = sim::proxy::http::local_reply(::http::StatusCode::OK, "ok");
    let l = labels(
        "destination",
        &peer("client"),
        &peer("echo"),
        None,
        Some(&ok),
    );
    (ProxyMetrics::for_component("proxy"), l)
}

#[library_benchmark]
#[bench::request(setup = telemetry_setup)]
fn telemetry((metrics, labels): (ProxyMetrics, Vec<(&'static str, String)>)) -> ProxyMetrics {
    let started = std::time::Instant::now();
    for _ in 0..N {
        record_request(&metrics, black_box(&labels), started);
    }
    metrics
}

struct Hbone {
    rt: tokio::runtime::Runtime,
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    server_id: Identity,
}

fn hbone_setup() -> Hbone {
    let ca = Ca::new().expect("ca");
    let client = ca
        .issue(
            &Identity::new("shop", "client"),
            sim::mesh::WORKLOAD_CERT_TTL,
        )
        .expect("cert");
    let server_id = Identity::new("shop", "echo");
    let server = ca
        .issue(&server_id, sim::mesh::WORKLOAD_CERT_TTL)
        .expect("cert");
    Hbone {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
        client: sim::mesh::tls::client_config(
            &client,
            &ca,
            &[sim::mesh::hbone::ALPN_H2],
            false,
            &Default::default(),
        )
        .expect("client config"),
        server: sim::mesh::tls::server_config(
            &server,
            &ca,
            &[sim::mesh::hbone::ALPN_H2],
            &Default::default(),
        )
        .expect("server config"),
        server_id,
    }
}

/// Bytes framed through the tunnel each call.
const TUNNEL_BYTES: usize = 64 * 1024;

#[library_benchmark]
#[bench::connect_and_64k(setup = hbone_setup)]
fn hbone(h: Hbone) -> usize {
    use tokio::io::AsyncReadExt;
    h.rt.block_on(async move {
        let (client_io, server_io) = tokio::io::duplex(256 * 1024);
        // meshsim's HBONE server, accepting every CONNECT into a sink that reads it all.
        let server = tokio::spawn(sim::mesh::hbone::serve(server_io, h.server, |_req| async {
            Ok(sim::mesh::HboneAccept::new(|mut tunnel| async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n @ 1..) = tunnel.read(&mut buf).await {
                    black_box(n);
                }
            }))
        }));
        let dst = std::net::SocketAddr::from(([10, 2, 0, 2], 15008));
        let (tls, _) = sim::mesh::tls::connect_io(
            client_io,
            dst,
            h.client,
            std::slice::from_ref(&h.server_id),
        )
        .await
        .expect("mTLS");
        let (mut send, conn) = h2::client::handshake(tls).await.expect("h2");
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("10.2.0.3:8080")
            .body(())
            .expect("request");
        let (resp, mut stream) = send.send_request(req, false).expect("CONNECT");
        let resp = resp.await.expect("response");
        assert_eq!(resp.status(), http::StatusCode::OK);
        let chunk = bytes::Bytes::from(vec![7u8; 16 * 1024]);
        let mut sent = 0;
        while sent < TUNNEL_BYTES {
            stream.reserve_capacity(chunk.len());
            stream.send_data(chunk.clone(), false).expect("data");
            sent += chunk.len();
        }
        stream.send_data(bytes::Bytes::new(), true).expect("end");
        drop(send);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
        sent
    })
}

fn sidecar_setup() -> (tokio::runtime::Runtime, Vec<AuthorizationPolicy>) {
    let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: api, namespace: shop}\nspec:\n  selector: {matchLabels: {app: echo}}\n  action: ALLOW\n  rules:\n  - from: [{source: {principals: [\"cluster.local/ns/shop/sa/client\"]}}]\n    to: [{operation: {methods: [GET], paths: [\"/api/*\"]}}]\n";
    (
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
        vec![serde_saphyr::from_str(yaml).expect("policy")],
    )
}

#[library_benchmark]
#[bench::get_100(setup = sidecar_setup)]
fn sidecar_http((rt, policies): (tokio::runtime::Runtime, Vec<AuthorizationPolicy>)) -> usize {
    use http_body_util::{BodyExt, Empty, Full};
    use hyper_util::rt::TokioIo;
    use sim::mesh::policy::{self, Attrs, HttpAttrs, Layer};
    rt.block_on(async move {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let policies = Arc::new(policies);
        // What a sidecar's inbound does with each request before the app: hyper's HTTP/1.1
        // parse, Envoy's path normalization, the L7 policy.
        let svc =
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                let policies = policies.clone();
                async move {
                    if sim::proxy::http::normalize(&mut req).is_err() {
                        return Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(400)
                                .body(Full::new(bytes::Bytes::new()))
                                .expect("response"),
                        );
                    }
                    let refs: Vec<&AuthorizationPolicy> = policies.iter().collect();
                    let attrs = Attrs {
                        principal: Some("cluster.local/ns/shop/sa/client".into()),
                        dest_port: 8080,
                        http: Some(HttpAttrs {
                            method: req.method().to_string(),
                            path: req.uri().path().to_string(),
                            host: "echo.shop".into(),
                            ..HttpAttrs::default()
                        }),
                        ..Attrs::default()
                    };
                    let v = policy::evaluate(&refs, &attrs, Layer::L7);
                    let status = if v.decision == policy::Decision::Allow {
                        200
                    } else {
                        403
                    };
                    Ok(http::Response::builder()
                        .status(status)
                        .body(Full::new(bytes::Bytes::from_static(b"ok")))
                        .expect("response"))
                }
            });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), svc),
        );
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut ok = 0;
        for k in 0..N {
            let req = http::Request::builder()
                .uri(format!("/api/./items/{k}"))
                .header("host", "echo.shop")
                .body(Empty::<bytes::Bytes>::new())
                .expect("request");
            let resp = send.send_request(req).await.expect("response");
            ok += usize::from(resp.status() == http::StatusCode::OK);
            let _ = resp.into_body().collect().await;
        }
        assert_eq!(ok, N, "every request is allowed");
        ok
    })
}

library_benchmark_group!(
    name = paths;
    benchmarks = ztunnel_l4, jwt, telemetry, hbone, sidecar_http
);

main!(library_benchmark_groups = paths);
