//! What the L7 proxies (sidecar, waypoint) share: serving HTTP/1.1 on a captured or tunneled
//! stream with hyper, local replies (403, 401, 503), JWT checks and the request telemetry.

use std::net::SocketAddr;

use crate::proxy::cost::RequestCost;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::mesh::control::{MeshPlan, ServiceInfo, WorkloadInfo};
use crate::mesh::policy::HttpAttrs;
use crate::proxy::access_log::{AccessLog, EnvoyRequest, LocalReply, envoy_line};
use crate::proxy::telemetry::{Labels, ProxyMetrics};
use scenario::jwt::{self, Issuer};

pub mod jwt_authn;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// A reply made by the proxy itself (Envoy's wording, so tools and people recognise it).
pub fn local_reply(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Tags a reply the proxy made with Envoy's response flags and code details, for its access
/// log.
pub fn mark(mut r: Response<Body>, flags: &'static str, details: String) -> Response<Body> {
    r.extensions_mut().insert(LocalReply { flags, details });
    r
}

pub fn denied() -> Response<Body> {
    denied_by("rbac_access_denied_matched_policy[none]".into())
}

/// 403 with Envoy's RBAC code details (`rbac_access_denied_matched_policy[…]`).
pub fn denied_by(details: String) -> Response<Body> {
    mark(
        local_reply(StatusCode::FORBIDDEN, "RBAC: access denied"),
        "-",
        details,
    )
}

/// 503 when the upstream could not be reached: Envoy's `UF` (upstream connection failure).
pub fn unavailable() -> Response<Body> {
    mark(
        local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers",
        ),
        "UF",
        "upstream_reset_before_response_started{connection_failure}".into(),
    )
}

/// 503 when a circuit breaker of the cluster overflowed: Envoy's `UO`, with the
/// `x-envoy-overloaded` header Envoy's router adds to a request it shed.
pub fn overflow() -> Response<Body> {
    let mut r = mark(
        local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        ),
        "UO",
        "upstream_reset_before_response_started{overflow}".into(),
    );
    r.headers_mut()
        .insert("x-envoy-overloaded", http::HeaderValue::from_static("true"));
    r
}

/// The reply for a request the upstream pool did not carry: `UO` or `UF`.
pub fn send_failed(e: &crate::proxy::connpool::SendError) -> Response<Body> {
    match e {
        crate::proxy::connpool::SendError::Overflow => overflow(),
        crate::proxy::connpool::SendError::Failed(_) => unavailable(),
    }
}

/// 503 when the service has no endpoint: Envoy's `UH` (no healthy upstream).
pub fn no_healthy_upstream() -> Response<Body> {
    mark(
        local_reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream"),
        "UH",
        "no_healthy_upstream".into(),
    )
}

/// What an access log line needs of a request, taken before the request is sent on.
pub struct RequestMeta {
    pub start: std::time::SystemTime,
    pub method: String,
    pub path: String,
    pub authority: String,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl RequestMeta {
    pub fn of<B>(req: &Request<B>) -> RequestMeta {
        let h = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        RequestMeta {
            start: std::time::SystemTime::now(),
            method: req.method().to_string(),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.to_string()),
            authority: h("host").unwrap_or_else(|| "-".into()),
            user_agent: h("user-agent"),
            request_id: h("x-request-id"),
        }
    }
}

/// Where a request went, for its access log line.
pub struct Upstream<'a> {
    pub host: Option<SocketAddr>,
    /// Envoy's cluster, e.g. `outbound|8080||echo.default.svc.cluster.local`.
    pub cluster: String,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    pub started: std::time::Instant,
    pub log: &'a AccessLog,
}

/// Writes one request's line in Istio's Envoy text format.
pub fn log_request(meta: &RequestMeta, resp: &Response<Body>, up: Upstream<'_>) {
    let (flags, details) = match resp.extensions().get::<LocalReply>() {
        Some(l) => (l.flags, l.details.as_str()),
        None => ("-", "via_upstream"),
    };
    let size = |h: Option<&http::HeaderValue>| {
        h.and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    up.log.write(envoy_line(&EnvoyRequest {
        start: meta.start,
        method: &meta.method,
        path: &meta.path,
        authority: &meta.authority,
        status: resp.status().as_u16(),
        flags,
        details,
        bytes_received: 0,
        bytes_sent: size(resp.headers().get(http::header::CONTENT_LENGTH)),
        duration: up.started.elapsed(),
        user_agent: meta.user_agent.as_deref(),
        request_id: meta.request_id.as_deref(),
        upstream_host: up.host,
        upstream_cluster: up.cluster,
        downstream_local: up.local,
        downstream_remote: up.remote,
    }));
}

/// Holds `cost` until `r`'s body has been sent (or dropped), so the request's after-response
/// CPU is paid once the whole response is out — relaying a body can take another task hop
/// after the head, and a burn in between would sit on the response's path.
pub fn pay_after_body(r: Response<Body>, cost: RequestCost) -> Response<Body> {
    r.map(|b| {
        b.map_frame(move |f| {
            let _held = &cost;
            f
        })
        .boxed()
    })
}

pub fn boxed(r: Response<Incoming>) -> Response<Body> {
    r.map(|b| b.boxed())
}

/// Runs RequestAuthentication on the request as Envoy's jwt_authn filter does (see
/// [`jwt_authn`]): no token passes with no request principal; a valid one fills the JWT
/// attributes of `attrs` and changes `req` as the rule says (token stripped unless
/// `forwardOriginalToken`, payload and claim headers added); an invalid one is refused with
/// Envoy's status text, 401 (403 for a disallowed audience) and `www-authenticate`.
pub fn check_jwt<B>(
    req: &mut Request<B>,
    issuers: &[Issuer],
    attrs: &mut HttpAttrs,
) -> Result<(), Box<Response<Body>>> {
    if issuers.is_empty() || is_cors_preflight(req) {
        return Ok(());
    }
    // The realm is the URI as the client sent it, before any token is stripped.
    let realm = original_uri(req);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match jwt_authn::authenticate(req, issuers, now) {
        Ok(None) => Ok(()),
        Ok(Some(c)) => {
            attrs.request_principal = Some(c.request_principal());
            attrs.request_issuer = Some(c.iss.clone());
            attrs.request_audiences = c.aud.clone();
            attrs.request_presenter = c.azp.clone();
            attrs.request_claims = Some(c.payload);
            // Later filters (RBAC) see the request as jwt_authn left it.
            attrs.headers = header_pairs(req);
            Ok(())
        }
        Err(e) => Err(Box::new(jwt_denied(&e, &realm))),
    }
}

/// Istio sets `bypass_cors_preflight`: an OPTIONS with `Origin` and
/// `Access-Control-Request-Method` carries no credentials and is not checked (envoy
/// jwt_authn/filter.cc, `isCorsPreflightRequest`).
fn is_cors_preflight<B>(req: &Request<B>) -> bool {
    let present = |h: &str| req.headers().get(h).is_some_and(|v| !v.is_empty());
    req.method() == hyper::Method::OPTIONS
        && present("origin")
        && present("access-control-request-method")
}

/// `scheme://host/path?query`, the path cut at 256 bytes (envoy
/// `Http::Utility::buildOriginalUri` with jwt_authn's `MaximumUriLength`). The scheme is the
/// request's own, else `http`: meshsim's proxies receive plain HTTP/1.1 after their own mTLS.
fn original_uri<B>(req: &Request<B>) -> String {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let mut path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    if path.len() > 256 {
        let mut cut = 256;
        while !path.is_char_boundary(cut) {
            cut -= 1;
        }
        path.truncate(cut);
    }
    format!(
        "{}://{host}{path}",
        req.uri().scheme_str().unwrap_or("http")
    )
}

/// Envoy's reply to a refused token: the status text as body, and
/// `www-authenticate: Bearer realm="<uri>", error="invalid_token"` (without the error part
/// for a missing token) (envoy jwt_authn/filter.cc, `Filter::onComplete`).
pub fn jwt_denied(e: &jwt::JwtError, realm: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(e.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut challenge = format!("Bearer realm=\"{realm}\"");
    if *e != jwt::JwtError::Missing {
        challenge.push_str(", error=\"invalid_token\"");
    }
    r.extensions_mut().insert(LocalReply {
        flags: "-",
        details: "jwt_authn_access_denied".into(),
    });
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&challenge) {
        h.insert(http::header::WWW_AUTHENTICATE, v);
    }
    r
}

fn header_pairs<B>(req: &Request<B>) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// The request's L7 attributes for policy.
pub fn http_attrs<B>(req: &Request<B>) -> HttpAttrs {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    HttpAttrs {
        method: req.method().as_str().to_string(),
        path: req.uri().path().to_string(),
        host,
        headers: header_pairs(req),
        ..HttpAttrs::default()
    }
}

/// Who a request or connection is from, for telemetry labels.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub workload: String,
    pub namespace: String,
    pub principal: String,
}

impl Peer {
    pub fn of(w: &WorkloadInfo) -> Peer {
        Peer {
            workload: w.workload.clone(),
            namespace: w.namespace.clone(),
            principal: w.identity.to_string(),
        }
    }

    /// From the peer's address (the mesh knows every pod) or else its certificate.
    pub fn lookup(
        plan: &MeshPlan,
        ip: Option<std::net::IpAddr>,
        id: Option<&crate::mesh::Identity>,
    ) -> Peer {
        if let Some(std::net::IpAddr::V4(v4)) = ip
            && let Some(w) = plan.workload_by_ip(v4)
            && id.is_none_or(|i| *i == w.identity)
        {
            return Peer::of(w);
        }
        match id {
            Some(i) => Peer {
                workload: "unknown".into(),
                namespace: i.namespace.clone(),
                principal: i.to_string(),
            },
            None => Peer {
                workload: "unknown".into(),
                namespace: "unknown".into(),
                principal: "unknown".into(),
            },
        }
    }
}

/// Istio's standard labels for one request or connection.
pub fn labels(
    reporter: &str,
    src: &Peer,
    dst: &Peer,
    svc: Option<&ServiceInfo>,
    resp: Option<&Response<Body>>,
) -> Labels {
    let mut l: Labels = vec![
        ("reporter", reporter.to_string()),
        ("source_workload", src.workload.clone()),
        ("source_workload_namespace", src.namespace.clone()),
        ("source_principal", src.principal.clone()),
        ("destination_workload", dst.workload.clone()),
        ("destination_workload_namespace", dst.namespace.clone()),
        ("destination_principal", dst.principal.clone()),
        (
            "destination_service",
            svc.map(|s| s.fqdn()).unwrap_or_else(|| "unknown".into()),
        ),
        (
            "destination_service_name",
            svc.map(|s| s.name.clone())
                .unwrap_or_else(|| "unknown".into()),
        ),
        (
            "destination_service_namespace",
            svc.map(|s| s.namespace.clone())
                .unwrap_or_else(|| "unknown".into()),
        ),
    ];
    if let Some(r) = resp {
        // Istio's `response_flags` label is Envoy's %RESPONSE_FLAGS%: `-` when the upstream
        // answered.
        let flags = r.extensions().get::<LocalReply>().map_or("-", |l| l.flags);
        l.push(("request_protocol", "http".into()));
        l.push(("response_code", r.status().as_u16().to_string()));
        l.push(("response_flags", flags.into()));
    }
    l
}

/// Adds Istio's `connection_security_policy` label: `mutual_tls` or `none` as the destination
/// saw the connection, `unknown` where a source reports (Istio's standard metrics).
pub fn with_security(mut l: Labels, mtls: Option<bool>) -> Labels {
    let v = match mtls {
        Some(true) => "mutual_tls",
        Some(false) => "none",
        None => "unknown",
    };
    l.push(("connection_security_policy", v.to_string()));
    l
}

/// Records one finished request.
pub fn record_request(m: &ProxyMetrics, labels: &Labels, started: std::time::Instant) {
    m.requests_total.get_or_create(labels).inc();
    m.request_duration
        .get_or_create(labels)
        .observe(started.elapsed().as_secs_f64() * 1000.0);
}

/// Envoy's `normalize_path` (Istio's default, BASE) on the request before anything reads its
/// path: the normalized path is what policies see and what goes upstream; a path Envoy refuses
/// is answered here (400 or 404).
pub fn normalize<B>(req: &mut Request<B>) -> Result<(), Box<Response<Body>>> {
    let Some(pq) = req.uri().path_and_query().cloned() else {
        return Ok(());
    };
    match crate::mesh::policy::normalize_path(pq.path()) {
        Ok(p) if p == pq.path() => Ok(()),
        Ok(p) => {
            let target = match pq.query() {
                Some(q) => format!("{p}?{q}"),
                None => p,
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = target.parse().ok();
            if let Ok(uri) = hyper::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
            Ok(())
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            Err(Box::new(local_reply(status, "Bad Request")))
        }
    }
}

/// The authorization filters of an Envoy proxy in Istio's order: CUSTOM (ext_authz against its
/// provider), then DENY and ALLOW (RBAC). AUDIT matches are logged (target `meshsim::audit`),
/// changing nothing. `Ok` lets the request go on (with any headers the authorizer added).
pub async fn authorize(
    plan: &MeshPlan,
    proxy: &(dyn Fn() -> String + Sync),
    policies: &[&scenario::manifest::AuthorizationPolicy],
    attrs: &crate::mesh::policy::Attrs,
    req: Request<Incoming>,
) -> Result<Request<Incoming>, Response<Body>> {
    use crate::mesh::policy::{self, Decision, Layer};
    let mut req = req;
    let line = plan
        .decisions
        .enabled()
        .then(|| format!("{} {}", req.method(), req.uri().path()));
    let record = |allowed: bool, by: &(dyn Fn() -> String + Sync)| {
        plan.decisions.record(|| crate::mesh::decisions::Record {
            proxy: proxy(),
            src_ip: attrs.source_ip,
            port: attrs.dest_port,
            request: line.clone(),
            allowed,
            by: by(),
            mtls: attrs.principal.is_some(),
        })
    };
    let custom = policy::custom_matches(policies, attrs, Layer::L7);
    if let Some(m) = custom.first() {
        let (mut parts, body) = req.into_parts();
        match crate::proxy::ext_authz::check(plan, &m.provider, &parts).await {
            crate::proxy::ext_authz::Outcome::Deny(r) => {
                record(false, &|| {
                    format!(
                        "CUSTOM {} rule {} (provider {})",
                        m.rule.policy, m.rule.rule, m.provider
                    )
                });
                return Err(mark(*r, "UAEX", "ext_authz_denied".into()));
            }
            crate::proxy::ext_authz::Outcome::Allow(add) => {
                for (k, v) in add {
                    parts.headers.insert(k, v);
                }
            }
        }
        req = Request::from_parts(parts, body);
    }
    let verdict = policy::evaluate(policies, attrs, Layer::L7);
    let allowed = verdict.decision == Decision::Allow;
    record(allowed, &|| crate::mesh::decisions::describe(&verdict));
    for a in &verdict.audits {
        tracing::info!(target: "meshsim::audit", policy = %a.policy, rule = a.rule, path = %req.uri().path(), "AUDIT rule matched");
    }
    match (&verdict.decision, &verdict.reason) {
        (Decision::Allow, _) => Ok(req),
        // Envoy's RBAC filter names the policy that denied: `ns[<ns>]-policy[<name>]-rule[<i>]`.
        (Decision::Deny { .. }, policy::Reason::Denied(r)) => {
            let (ns, name) = r.policy.split_once('/').unwrap_or(("", &r.policy));
            Err(denied_by(format!(
                "rbac_access_denied_matched_policy[ns[{ns}]-policy[{name}]-rule[{}]]",
                r.rule
            )))
        }
        (Decision::Deny { .. }, _) => Err(denied()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Istio's `response_flags` label carries Envoy's %RESPONSE_FLAGS%: `-` for an upstream's
    /// answer, the flag of a reply the proxy made itself (istio.io "Istio Standard Metrics").
    #[test]
    fn request_labels_carry_the_response_flags() {
        let peer = Peer::default();
        let flags = |r: &Response<Body>| {
            labels("waypoint", &peer, &peer, None, Some(r))
                .into_iter()
                .find(|l| l.0 == "response_flags")
                .map(|l| l.1)
        };
        let shed = overflow();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["x-envoy-overloaded"], "true");
        assert_eq!(flags(&shed).as_deref(), Some("UO"));
        assert_eq!(flags(&unavailable()).as_deref(), Some("UF"));
        assert_eq!(
            flags(&local_reply(StatusCode::OK, "ok")).as_deref(),
            Some("-")
        );
        // A connection's labels (no response) have none.
        assert!(
            labels("source", &peer, &peer, None, None)
                .iter()
                .all(|l| l.0 != "response_flags")
        );
    }
}
