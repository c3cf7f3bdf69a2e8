//! The proxies' admin ports: each proxy's own `:15020/stats/prometheus` (and ztunnel's
//! `:15021/healthz/ready`) in its namespace, and the cluster's merged metrics on one host
//! loopback port, which a real Prometheus scrapes.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::telemetry::{ProxyMetrics, render};

/// A proxy's metrics and the labels that tell it apart in the merged view.
#[derive(Clone)]
pub struct MetricsSource {
    pub labels: Vec<(&'static str, String)>,
    pub metrics: Arc<ProxyMetrics>,
}

/// Renders several proxies' metrics as one exposition.
pub fn render_sources(sources: &[MetricsSource]) -> String {
    let owned: Vec<(Vec<(&str, &str)>, &ProxyMetrics)> = sources
        .iter()
        .map(|s| {
            (
                s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect(),
                s.metrics.as_ref(),
            )
        })
        .collect();
    render(&owned)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// Serves `/stats/prometheus` (and `/metrics`) with `sources`, and `/healthz/ready`, on
/// `listener`, for as long as the runtime runs.
pub async fn serve(listener: TcpListener, sources: Arc<Vec<MetricsSource>>) {
    loop {
        let (conn, _) = crate::accept::next(&listener, "admin", None).await;
        let sources = sources.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let sources = sources.clone();
                async move {
                    let r = match req.uri().path() {
                        "/stats/prometheus" | "/metrics" => reply(
                            StatusCode::OK,
                            "text/plain; version=0.0.4",
                            render_sources(&sources),
                        ),
                        "/healthz/ready" => reply(StatusCode::OK, "text/plain", "ready\n".into()),
                        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
                    };
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn), svc)
                .await;
        });
    }
}
