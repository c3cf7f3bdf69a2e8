//! The request side of Envoy's jwt_authn filter as istiod configures it for
//! RequestAuthentication: where tokens are found, which rule's verdict counts when there are
//! several, and what is forwarded (the token stripped, the payload and claims as headers).
//!
//! istiod's requirement (istio pilot/pkg/security/authn/policy_applier.go,
//! `convertToEnvoyJwtConfig`): with one rule, `any{rule, allow_missing}`; with several,
//! `any{rule1, rule2, …, all{any{rule1, allow_missing}, any{rule2, allow_missing}, …}}`. Envoy
//! runs it in order and stops at the first success (envoy
//! source/extensions/filters/http/jwt_authn/verifier.cc, `AnyVerifierImpl`/`AllVerifierImpl`),
//! which comes to: the request passes with the first rule all of whose tokens verify; with no
//! token anywhere it passes unauthenticated; otherwise the first rule (in order) that found a
//! token gives the error.

use http::{HeaderName, HeaderValue, Request, Uri};
use scenario::jwt::{self, Claims, Issuer, JwtError, TokenLocation};

/// Where one token was found, so it can be removed after verification.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    Header(String),
    Param(String),
    Cookie,
}

/// Runs the filter on `req`. `Ok(None)`: no token, the request goes on unauthenticated;
/// `Ok(Some(claims))`: verified, the request has been changed as the rule says; `Err`: refuse.
pub fn authenticate<B>(
    req: &mut Request<B>,
    issuers: &[Issuer],
    now: u64,
) -> Result<Option<Claims>, JwtError> {
    // Output headers a client sent itself are dropped first, so only verified values reach
    // the app (envoy extractor.cc `sanitizeHeaders`, called by each verifier before it runs).
    for i in issuers {
        let outputs = i
            .output_payload_to_header
            .iter()
            .chain(i.output_claim_to_headers.iter().map(|(h, _)| h));
        for h in outputs {
            req.headers_mut().remove(h.as_str());
        }
    }
    let mut first_error = None;
    for issuer in issuers {
        let tokens = extract(req, issuer);
        if tokens.is_empty() {
            continue; // this rule's allow_missing
        }
        match verify_all(req, issuer, &tokens, now) {
            Ok(claims) => return Ok(Some(claims)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(None), Err)
}

/// Every token a rule finds must verify (envoy authenticator.cc `doneWithStatus`: a good token
/// next to a bad one must not pass). Envoy takes them from the back of the list.
fn verify_all<B>(
    req: &mut Request<B>,
    issuer: &Issuer,
    tokens: &[(String, Found)],
    now: u64,
) -> Result<Claims, JwtError> {
    let mut first = None;
    for (token, at) in tokens.iter().rev() {
        let claims = jwt::verify_for(token, issuer, now)?;
        forward(req, issuer, &claims, at);
        first.get_or_insert(claims);
    }
    first.ok_or(JwtError::Missing)
}

/// What a verified token leaves in the request (envoy authenticator.cc `handleGoodJwt`): the
/// payload and claim headers added, the token removed unless `forwardOriginalToken`.
fn forward<B>(req: &mut Request<B>, issuer: &Issuer, claims: &Claims, at: &Found) {
    let mut add = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            req.headers_mut().append(n, v);
        }
    };
    if let Some(h) = &issuer.output_payload_to_header {
        add(h, &claims.payload_b64);
    }
    for (h, claim) in &issuer.output_claim_to_headers {
        if let Some(v) = claims.claim_header_value(claim) {
            add(h, &v);
        }
    }
    if issuer.forward_original_token {
        return;
    }
    match at {
        // The whole header goes, as Envoy's `JwtHeaderLocation::removeJwt` does.
        Found::Header(name) => {
            req.headers_mut().remove(name.as_str());
        }
        Found::Param(name) => remove_param(req, name),
        // Envoy leaves cookies in place (`JwtCookieLocation::removeJwt` is a TODO).
        Found::Cookie => {}
    }
}

/// The tokens `issuer`'s locations hold: headers, then query parameters, then cookies (envoy
/// extractor.cc `ExtractorImpl::extract`).
fn extract<B>(req: &Request<B>, issuer: &Issuer) -> Vec<(String, Found)> {
    let mut out = Vec::new();
    for loc in &issuer.locations {
        if let TokenLocation::Header { name, prefix } = loc {
            for v in req.headers().get_all(name.as_str()) {
                let Ok(v) = v.to_str() else { continue };
                if let Some(t) = after_prefix(v, prefix) {
                    out.push((t.to_string(), Found::Header(name.clone())));
                }
            }
        }
    }
    let query = req.uri().query().unwrap_or("");
    for loc in &issuer.locations {
        if let TokenLocation::Param(name) = loc
            && let Some(t) = query_param(query, name)
        {
            out.push((t, Found::Param(name.clone())));
        }
    }
    for loc in &issuer.locations {
        if let TokenLocation::Cookie(name) = loc
            && let Some(t) = cookie(req, name)
        {
            out.push((t, Found::Cookie));
        }
    }
    out
}

/// The token in a header value: after the first occurrence of `prefix` (case-sensitive, so
/// `bearer x` or `Basic x` hold no Bearer token), from the first base64url or `.` character to
/// the end (envoy extractor.cc `extract` and `extractJWT`). `None`: no token here.
fn after_prefix<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(value);
    }
    let rest = &value[value.find(prefix)? + prefix.len()..];
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    // No legal character at all: Envoy keeps the whole value (then fails to parse it).
    Some(rest.find(legal).map_or(value, |i| &rest[i..]))
}

/// The first value of query parameter `name`, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The request without query parameter `name` (Envoy's `JwtParamLocation::removeJwt`); the
/// other parameters keep their order and encoding.
fn remove_param<B>(req: &mut Request<B>, name: &str) {
    let path = req.uri().path().to_string();
    let kept: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && percent_decode(p.split('=').next().unwrap_or("")) != name)
        .collect();
    let pq = if kept.is_empty() {
        path
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = pq.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(u) = Uri::from_parts(parts) {
            *req.uri_mut() = u;
        }
    }
}

/// Cookie `name` from the `Cookie` headers (first one wins; quotes around the value go), as
/// Envoy's `Http::Utility::parseCookies`.
fn cookie<B>(req: &Request<B>, name: &str) -> Option<String> {
    req.headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim_start().split_once('=')?;
            (k == name).then(|| {
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
                    .to_string()
            })
        })
}

#[cfg(test)]
mod tests;
