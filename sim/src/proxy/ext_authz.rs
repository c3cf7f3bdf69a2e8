//! CUSTOM AuthorizationPolicy: Envoy's HTTP ext_authz check against an authorizer the
//! scenario runs (`meshConfig.extensionProviders[].envoyExtAuthzHttp`). The proxy sends the
//! request's method and path (behind `pathPrefix`) with Host, Authorization and the listed
//! headers, and no body; a 200 lets the request go on (with the listed response headers added),
//! anything else goes back to the client as the authorizer wrote it (Envoy's
//! `extensions/filters/http/ext_authz`, Istio's `extensionProviders` reference).
//!
//! The check goes to one of the authorizer's pods directly, in plaintext: meshsim does not
//! route the proxy's own calls through the mesh (an authorizer in a STRICT namespace would
//! refuse it; Istio sends it through the proxy's mesh cluster).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::mesh::control::MeshPlan;
use crate::proxy::sock;
use scenario::ExtAuthzHttp;

/// The proxies' response body (the same type as `proxy::http::Body`, named here so this
/// module stays below `http`, which calls it).
type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// Headers Envoy always sends in an HTTP ext_authz check.
const ALWAYS: [&str; 2] = ["host", "authorization"];

/// What the authorizer decided.
pub enum Outcome {
    /// Go on, adding these headers to the request.
    Allow(Vec<(http::HeaderName, http::HeaderValue)>),
    /// The client's answer.
    Deny(Box<Response<Body>>),
}

/// Asks provider `name` about a request whose head is `parts`.
pub async fn check(plan: &MeshPlan, name: &str, parts: &http::request::Parts) -> Outcome {
    let Some((cfg, addr)) = plan.ext_authz(name) else {
        return error(None);
    };
    let timeout = cfg.timeout.map(|t| t.0).unwrap_or(Duration::from_secs(600));
    match tokio::time::timeout(timeout, ask(cfg, addr, parts)).await {
        Ok(Ok(resp)) => decide(cfg, resp),
        Ok(Err(e)) => {
            tracing::debug!(provider = name, error = %e, "ext_authz check failed");
            error(Some(cfg))
        }
        Err(_) => error(Some(cfg)),
    }
}

async fn ask(
    cfg: &ExtAuthzHttp,
    addr: SocketAddr,
    parts: &http::request::Parts,
) -> Result<Response<Bytes>, String> {
    let tcp = sock::connect_marked(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = format!("{}{path}", cfg.path_prefix.as_deref().unwrap_or(""));
    let mut req = Request::builder().method(parts.method.clone()).uri(uri);
    for (k, v) in &parts.headers {
        let wanted = ALWAYS.contains(&k.as_str())
            || cfg
                .include_request_headers_in_check
                .iter()
                .any(|h| h.eq_ignore_ascii_case(k.as_str()));
        if wanted {
            req = req.header(k, v);
        }
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let (head, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(head, body))
}

fn pick(headers: &http::HeaderMap, names: &[String]) -> Vec<(http::HeaderName, http::HeaderValue)> {
    headers
        .iter()
        .filter(|(k, _)| names.iter().any(|n| n.eq_ignore_ascii_case(k.as_str())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn decide(cfg: &ExtAuthzHttp, resp: Response<Bytes>) -> Outcome {
    if resp.status() == StatusCode::OK {
        return Outcome::Allow(pick(resp.headers(), &cfg.headers_to_upstream_on_allow));
    }
    let keep = pick(resp.headers(), &cfg.headers_to_downstream_on_deny);
    let (head, body) = resp.into_parts();
    let mut out = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *out.status_mut() = head.status;
    for (k, v) in keep {
        out.headers_mut().append(k, v);
    }
    Outcome::Deny(Box::new(out))
}

/// The authorizer could not answer: allowed with `failOpen`, else `statusOnError` (403 by
/// default, Envoy's `status_on_error`).
fn error(cfg: Option<&ExtAuthzHttp>) -> Outcome {
    if cfg.is_some_and(|c| c.fail_open) {
        return Outcome::Allow(Vec::new());
    }
    let status = cfg
        .and_then(|c| c.status_on_error.as_deref())
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::FORBIDDEN);
    let mut r = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    Outcome::Deny(Box::new(r))
}
