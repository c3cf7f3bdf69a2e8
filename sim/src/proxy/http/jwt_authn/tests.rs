//! Each case cites the Envoy or Istio source whose behaviour it pins.

use std::collections::BTreeMap;

use super::*;
use scenario::jwt::{Jwks, SigningKey};
use scenario::manifest::{ClaimToHeader, JwtHeader, JwtRule};

const A: &str = "https://a.example.com";
const B: &str = "https://b.example.com";
const NOW: u64 = 1000;

struct Fixture {
    key: SigningKey,
    jwks: Jwks,
}

fn fixture() -> Fixture {
    let (key, _) = SigningKey::generate("k1").unwrap();
    let jwks = Jwks::parse(&key.jwks_json()).unwrap();
    Fixture { key, jwks }
}

impl Fixture {
    fn token(&self, iss: &str, exp: u64) -> String {
        let mut c = BTreeMap::new();
        c.insert("iss".into(), iss.into());
        c.insert("sub".into(), "alice".into());
        c.insert("exp".into(), exp.into());
        c.insert("email".into(), "alice@example.com".into());
        self.key.mint(&c).unwrap()
    }

    fn rule(&self, rule: JwtRule) -> Issuer {
        Issuer::from_rule(&rule, self.jwks.clone())
    }

    fn default_rule(&self, iss: &str) -> Issuer {
        self.rule(JwtRule {
            issuer: iss.into(),
            ..Default::default()
        })
    }
}

fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

// Istio: "a request without a token is accepted" (RequestAuthentication docs; allow_missing in
// policy_applier.go).
#[test]
fn no_token_passes_unauthenticated() {
    let f = fixture();
    let mut r = req("/", &[]);
    assert_eq!(authenticate(&mut r, &[f.default_rule(A)], NOW), Ok(None));
}

// envoy extractor.cc: the default locations are `Authorization: Bearer` and `access_token`;
// the prefix is matched case-sensitively, so another scheme is no token at all.
#[test]
fn default_locations_and_non_bearer_authorization() {
    let f = fixture();
    let issuers = [f.default_rule(A)];
    let t = f.token(A, 2000);
    let mut r = req("/", &[("authorization", &format!("Bearer {t}"))]);
    let c = authenticate(&mut r, &issuers, NOW).unwrap().unwrap();
    assert_eq!(c.request_principal(), format!("{A}/alice"));
    let mut r = req(&format!("/x?a=1&access_token={t}"), &[]);
    assert!(authenticate(&mut r, &issuers, NOW).unwrap().is_some());
    for v in ["Basic dXNlcjpwdw==", "bearer abc.def.ghi"] {
        let mut r = req("/", &[("authorization", v)]);
        assert_eq!(authenticate(&mut r, &issuers, NOW), Ok(None), "{v}");
    }
}

// Istio: "A request that contains an invalid token is rejected".
#[test]
fn invalid_token_is_refused_with_its_reason() {
    let f = fixture();
    let issuers = [f.default_rule(A)];
    let expired = f.token(A, 100);
    let mut r = req("/", &[("authorization", &format!("Bearer {expired}"))]);
    assert_eq!(authenticate(&mut r, &issuers, NOW), Err(JwtError::Expired));
    let mut r = req("/", &[("authorization", "Bearer garbage")]);
    assert_eq!(
        authenticate(&mut r, &issuers, NOW),
        Err(JwtError::BadFormat)
    );
}

// fromHeaders with a custom prefix, fromParams, fromCookies (istio policy_applier.go maps them
// to Envoy's from_headers/value_prefix, from_params, from_cookies).
#[test]
fn custom_locations() {
    let f = fixture();
    let issuers = [f.rule(JwtRule {
        issuer: A.into(),
        from_headers: vec![JwtHeader {
            name: "x-token".into(),
            prefix: Some("Token ".into()),
        }],
        from_params: vec!["jwt".into()],
        from_cookies: vec!["session".into()],
        ..Default::default()
    })];
    let t = f.token(A, 2000);
    let mut r = req("/", &[("x-token", &format!("Token {t}"))]);
    assert!(authenticate(&mut r, &issuers, NOW).unwrap().is_some());
    assert!(r.headers().get("x-token").is_none(), "stripped");
    let mut r = req(&format!("/p?jwt={t}&keep=1"), &[]);
    assert!(authenticate(&mut r, &issuers, NOW).unwrap().is_some());
    assert_eq!(r.uri().to_string(), "/p?keep=1", "the parameter is removed");
    let mut r = req("/", &[("cookie", &format!("a=1; session=\"{t}\""))]);
    assert!(authenticate(&mut r, &issuers, NOW).unwrap().is_some());
    // Envoy does not remove cookies (JwtCookieLocation::removeJwt is empty).
    assert!(r.headers().get("cookie").is_some());
    // The default location is not looked at once a rule names its own.
    let mut r = req("/", &[("authorization", "Bearer garbage")]);
    assert_eq!(authenticate(&mut r, &issuers, NOW), Ok(None));
}

// envoy authenticator.cc handleGoodJwt: `forward` keeps the token, else the header goes.
#[test]
fn forward_original_token_keeps_it() {
    let f = fixture();
    let t = f.token(A, 2000);
    let keep = [f.rule(JwtRule {
        issuer: A.into(),
        forward_original_token: Some(true),
        ..Default::default()
    })];
    let mut r = req("/", &[("authorization", &format!("Bearer {t}"))]);
    authenticate(&mut r, &keep, NOW).unwrap();
    assert!(r.headers().get("authorization").is_some());
    let mut r = req("/", &[("authorization", &format!("Bearer {t}"))]);
    authenticate(&mut r, &[f.default_rule(A)], NOW).unwrap();
    assert!(r.headers().get("authorization").is_none());
}

// envoy authenticator.cc handleGoodJwt (forward_payload_header, claim_to_headers) and
// extractor.cc sanitizeHeaders (a client's own copies are dropped first).
#[test]
fn payload_and_claims_to_headers_replace_client_copies() {
    let f = fixture();
    let issuers = [f.rule(JwtRule {
        issuer: A.into(),
        output_payload_to_header: Some("x-jwt-payload".into()),
        output_claim_to_headers: vec![ClaimToHeader {
            header: "x-email".into(),
            claim: "email".into(),
        }],
        ..Default::default()
    })];
    let t = f.token(A, 2000);
    let mut r = req(
        "/",
        &[
            ("authorization", &format!("Bearer {t}")),
            ("x-email", "mallory@evil.com"),
            ("x-jwt-payload", "forged"),
        ],
    );
    authenticate(&mut r, &issuers, NOW).unwrap();
    let payload = t.split('.').nth(1).unwrap();
    assert_eq!(r.headers()["x-jwt-payload"], payload);
    assert_eq!(r.headers()["x-email"], "alice@example.com");
    assert_eq!(r.headers().get_all("x-email").iter().count(), 1);
    // Without a token the forged copies are still dropped.
    let mut r = req("/", &[("x-email", "mallory@evil.com")]);
    assert_eq!(authenticate(&mut r, &issuers, NOW), Ok(None));
    assert!(r.headers().get("x-email").is_none());
}

// istio policy_applier.go: several rules sharing a location pass with whichever issuer the
// token names (the outer OR); a token of neither issuer is "Jwt issuer is not configured".
#[test]
fn several_issuers_share_the_default_location() {
    let f = fixture();
    let issuers = [f.default_rule(A), f.default_rule(B)];
    for iss in [A, B] {
        let t = f.token(iss, 2000);
        let mut r = req("/", &[("authorization", &format!("Bearer {t}"))]);
        let c = authenticate(&mut r, &issuers, NOW).unwrap().unwrap();
        assert_eq!(c.iss, iss);
    }
    let t = f.token("https://c.example.com", 2000);
    let mut r = req("/", &[("authorization", &format!("Bearer {t}"))]);
    let e = authenticate(&mut r, &issuers, NOW).unwrap_err();
    assert!(matches!(e, JwtError::UnknownIssuer(_)));
}

// envoy authenticator.cc doneWithStatus: "If a request has multiple tokens, all of them must be
// valid".
#[test]
fn a_good_token_does_not_carry_a_bad_one() {
    let f = fixture();
    let issuers = [f.default_rule(A)];
    let good = f.token(A, 2000);
    let bad = f.token(A, 100);
    let mut r = req(
        &format!("/?access_token={bad}"),
        &[("authorization", &format!("Bearer {good}"))],
    );
    assert_eq!(authenticate(&mut r, &issuers, NOW), Err(JwtError::Expired));
}

// envoy jwt_authn/filter.cc onComplete: the status text is the body, 401 (403 for audiences),
// `www-authenticate: Bearer realm="<scheme>://<host><path>", error="invalid_token"`.
#[test]
fn refusals_carry_envoys_body_status_and_challenge() {
    use crate::mesh::policy::HttpAttrs;
    use crate::proxy::http::check_jwt;
    use http_body_util::BodyExt;

    let f = fixture();
    let t = f.token(A, 100);
    let mut r = req(
        "/api?x=1",
        &[
            ("host", "api.prod:8080"),
            ("authorization", &format!("Bearer {t}")),
        ],
    );
    let resp = check_jwt(&mut r, &[f.default_rule(A)], &mut HttpAttrs::default()).unwrap_err();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"http://api.prod:8080/api?x=1\", error=\"invalid_token\""
    );
    let body = futures::executor::block_on(resp.into_body().collect())
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"Jwt is expired");

    let aud = f.rule(JwtRule {
        issuer: A.into(),
        audiences: vec!["payments".into()],
        ..Default::default()
    });
    // check_jwt reads the clock: a token valid until 2096.
    let t = f.token(A, 4_000_000_000);
    let mut r = req("/", &[("authorization", &format!("Bearer {t}"))]);
    let resp = check_jwt(&mut r, &[aud], &mut HttpAttrs::default()).unwrap_err();
    assert_eq!(resp.status(), 403);
}

// A verified token fills the JWT attributes policies read (request.auth.*), and RBAC sees the
// request as jwt_authn left it (token gone).
#[test]
fn success_fills_request_auth_attributes() {
    use crate::mesh::policy::HttpAttrs;
    use crate::proxy::http::check_jwt;

    let f = fixture();
    let mut c = BTreeMap::new();
    c.insert("iss".into(), A.into());
    c.insert("sub".into(), "alice".into());
    c.insert("azp".into(), "web".into());
    c.insert("aud".into(), "payments".into());
    let t = f.key.mint(&c).unwrap();
    let mut r = req("/", &[("authorization", &format!("Bearer {t}"))]);
    let mut attrs = HttpAttrs {
        headers: vec![("authorization".into(), format!("Bearer {t}"))],
        ..HttpAttrs::default()
    };
    check_jwt(&mut r, &[f.default_rule(A)], &mut attrs).unwrap();
    assert_eq!(
        attrs.request_principal.as_deref(),
        Some("https://a.example.com/alice")
    );
    assert_eq!(attrs.request_issuer.as_deref(), Some(A));
    assert_eq!(attrs.request_audiences, vec!["payments".to_string()]);
    assert_eq!(attrs.request_presenter.as_deref(), Some("web"));
    assert_eq!(attrs.request_claims.as_ref().unwrap()["azp"], "web");
    assert!(attrs.headers.iter().all(|(k, _)| k != "authorization"));
}
