//! JWT validation for `RequestAuthentication`, as Envoy's jwt_authn filter does it: a token is
//! parsed, its `iss` checked against the rule, `nbf`/`exp` with Envoy's 60 s clock skew, its
//! audiences, then its signature with the issuer's JWKS; each failure has Envoy's own status
//! text. Where a request carries tokens, which rule applies and what is forwarded is the
//! proxies' part (`sim::proxy::jwt_authn`).
//!
//! Keys: EC P-256 (ES256) and RSA (RS256/384/512, PS256/384/512), verified with ring; tokens
//! of Envoy's other algorithms (ES384, ES512, HS*, EdDSA) fail verification here. Minting (ES256) exists for
//! tests and `meshsim token`, so users can make tokens for their own JWKS.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, KeyPair};

/// Envoy's default allowance for clock differences on `exp` and `nbf`, in seconds: Istio does
/// not set `clock_skew_seconds`, so the filter uses jwt_verify_lib's `kClockSkewInSecond`
/// (envoy source/extensions/filters/http/jwt_authn/authenticator.cc, "Default is 60 seconds").
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Why a JWKS could not be read, a token could not be minted, or a token was refused.
///
/// The verification variants display as Envoy's status strings (envoy
/// source/common/jwt/status.cc, `getStatusString`), because Envoy's 401 body is exactly that
/// string and clients and tests match on it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JSON Web Key Set: {0}")]
    BadJwks(String),
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("Jwt is missing")]
    Missing,
    #[error("Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections")]
    BadFormat,
    #[error("Jwt header is an invalid Base64url encoded")]
    HeaderBadBase64,
    #[error("Jwt header is an invalid JSON")]
    HeaderBadJson,
    #[error("Jwt header [alg] field is required and must be a string")]
    HeaderBadAlg,
    #[error("Jwt header [alg] is not supported")]
    HeaderAlgNotSupported,
    #[error("Jwt header [kid] field is not a string")]
    HeaderBadKid,
    #[error("Jwt payload is an invalid Base64url encoded")]
    PayloadBadBase64,
    #[error("Jwt payload is an invalid JSON")]
    PayloadBadJson,
    /// `iss`, `sub` or `jti` of another JSON type.
    #[error("Jwt payload [{0}] field is not a string")]
    ClaimNotString(&'static str),
    /// `iat`, `nbf` or `exp` that is not a number.
    #[error("Jwt payload [{0}] field is not an integer")]
    ClaimNotInteger(&'static str),
    /// `iat`, `nbf` or `exp` below 0 or beyond 64 bits.
    #[error("Jwt payload [{0}] field is not a positive 64 bit integer")]
    ClaimOutOfRange(&'static str),
    #[error("Jwt payload [aud] field is not a string or string list")]
    AudNotString,
    #[error("Jwt signature is an invalid Base64url encoded")]
    SignatureBadBase64,
    /// The token's `iss` (kept for logs; Envoy's text does not name it).
    #[error("Jwt issuer is not configured")]
    UnknownIssuer(String),
    #[error("Audiences in Jwt are not allowed")]
    AudienceNotAllowed,
    #[error("Jwt not yet valid")]
    NotYetValid,
    #[error("Jwt is expired")]
    Expired,
    #[error("Jwt verification fails")]
    VerificationFail,
    #[error("Jwks doesn't have key to match kid or alg from Jwt")]
    KidAlgMismatch,
}

impl JwtError {
    /// The HTTP status Envoy answers with: 403 for a token whose audience is not allowed, 401
    /// for every other failure (envoy source/extensions/filters/http/jwt_authn/filter.cc,
    /// `Filter::onComplete`).
    pub fn http_status(&self) -> u16 {
        match self {
            JwtError::AudienceNotAllowed => 403,
            _ => 401,
        }
    }
}

#[derive(Debug, Clone)]
enum Key {
    Ec { x: Vec<u8>, y: Vec<u8> },
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    /// A key that names its `alg` is only used for tokens of that `alg`.
    alg: Option<String>,
    key: Key,
}

/// A parsed JSON Web Key Set.
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

fn b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('='))
}

fn field<'a>(v: &'a serde_json::Value, k: &str, i: usize) -> Result<&'a str, JwtError> {
    v.get(k)
        .and_then(|x| x.as_str())
        .ok_or_else(|| JwtError::BadJwks(format!("key {i} has no string field `{k}`")))
}

impl Jwks {
    pub fn parse(text: &str) -> Result<Jwks, JwtError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| JwtError::BadJwks(e.to_string()))?;
        let Some(arr) = v.get("keys").and_then(|k| k.as_array()) else {
            return Err(JwtError::BadJwks("it has no `keys` array".into()));
        };
        let mut keys = Vec::new();
        for (i, k) in arr.iter().enumerate() {
            let kid = k.get("kid").and_then(|x| x.as_str()).map(str::to_string);
            let alg = k.get("alg").and_then(|x| x.as_str()).map(str::to_string);
            let key = match field(k, "kty", i)? {
                "EC" => {
                    let crv = field(k, "crv", i)?;
                    if crv != "P-256" {
                        return Err(JwtError::BadJwks(format!(
                            "key {i}: curve `{crv}` is not supported; use P-256"
                        )));
                    }
                    let bad = |_| JwtError::BadJwks(format!("key {i}: bad base64url"));
                    Key::Ec {
                        x: b64(field(k, "x", i)?).map_err(bad)?,
                        y: b64(field(k, "y", i)?).map_err(bad)?,
                    }
                }
                "RSA" => {
                    let bad = |_| JwtError::BadJwks(format!("key {i}: bad base64url"));
                    Key::Rsa {
                        n: b64(field(k, "n", i)?).map_err(bad)?,
                        e: b64(field(k, "e", i)?).map_err(bad)?,
                    }
                }
                other => {
                    return Err(JwtError::BadJwks(format!(
                        "key {i}: key type `{other}` is not supported; use EC (P-256) or RSA"
                    )));
                }
            };
            keys.push(Jwk { kid, alg, key });
        }
        if keys.is_empty() {
            return Err(JwtError::BadJwks("its `keys` array is empty".into()));
        }
        Ok(Jwks { keys })
    }
}

/// What a verified token says: the claims policies use, and the whole payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    /// `azp` (authorized party): Istio's `request.auth.presenter`.
    pub azp: Option<String>,
    /// The whole payload: Istio's `request.auth.claims`.
    pub payload: serde_json::Value,
    /// The payload segment as the token carried it (base64url, unpadded): what
    /// `outputPayloadToHeader` forwards (Istio leaves Envoy's `pad_forward_payload_header` off).
    pub payload_b64: String,
}

impl Claims {
    /// Istio's request principal: `<iss>/<sub>`.
    pub fn request_principal(&self) -> String {
        format!("{}/{}", self.iss, self.sub)
    }

    /// A claim as Envoy's `claim_to_headers` writes it: strings as they are, whole numbers
    /// without a fraction, booleans as `true`/`false`; objects, lists and absent claims give
    /// nothing. `name` may reach into nested objects with `.` (`user.email`).
    /// (envoy source/extensions/filters/http/jwt_authn/authenticator.cc, `addJWTClaimToHeader`)
    pub fn claim_header_value(&self, name: &str) -> Option<String> {
        let mut v = &self.payload;
        for part in name.split('.') {
            v = v.get(part)?;
        }
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => match (n.as_u64(), n.as_f64()) {
                (Some(u), _) => u.to_string(),
                // Envoy prints other numbers with std::to_string (six decimals).
                (None, Some(f)) => format!("{f:.6}"),
                (None, None) => return None,
            },
            _ => return None,
        };
        (!text.is_empty()).then_some(text)
    }
}

/// Where a rule looks for its token (RequestAuthentication `fromHeaders`, `fromParams`,
/// `fromCookies`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenLocation {
    /// A header (lowercase name) whose value holds the token after `prefix` (may be empty).
    Header { name: String, prefix: String },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// One `jwtRules` entry as the proxies apply it (Envoy's `JwtProvider`, as istiod builds it in
/// istio pilot/pkg/security/authn/policy_applier.go, `convertToEnvoyJwtConfig`).
#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    /// Allowed audiences; empty: any.
    pub audiences: Vec<String>,
    pub jwks: Jwks,
    /// Where tokens for this issuer are looked for, in Envoy's order (headers, then query
    /// parameters, then cookies, each sorted by name).
    pub locations: Vec<TokenLocation>,
    /// `forwardOriginalToken`: keep the token in the forwarded request (default: removed).
    pub forward_original_token: bool,
    /// `outputPayloadToHeader`: a header that gets the verified payload (base64url).
    pub output_payload_to_header: Option<String>,
    /// `outputClaimToHeaders`: `(header, claim)` pairs.
    pub output_claim_to_headers: Vec<(String, String)>,
}

impl Issuer {
    /// An issuer with Envoy's default token locations and no outputs.
    pub fn new(issuer: &str, audiences: Vec<String>, jwks: Jwks) -> Issuer {
        Issuer {
            issuer: issuer.to_string(),
            audiences,
            jwks,
            locations: default_locations(),
            forward_original_token: false,
            output_payload_to_header: None,
            output_claim_to_headers: Vec::new(),
        }
    }

    /// The issuer a `jwtRules` entry describes, with its (already read) keys.
    pub fn from_rule(rule: &crate::manifest::JwtRule, jwks: Jwks) -> Issuer {
        let mut locations: Vec<TokenLocation> = rule
            .from_headers
            .iter()
            .map(|h| TokenLocation::Header {
                name: h.name.to_ascii_lowercase(),
                prefix: h.prefix.clone().unwrap_or_default(),
            })
            .chain(rule.from_params.iter().cloned().map(TokenLocation::Param))
            .chain(rule.from_cookies.iter().cloned().map(TokenLocation::Cookie))
            .collect();
        if locations.is_empty() {
            locations = default_locations();
        }
        // Envoy keeps each kind of location in a sorted map (extractor.cc), so a location named
        // twice is looked at once and the order is by name.
        locations.sort();
        locations.dedup();
        Issuer {
            issuer: rule.issuer.clone(),
            audiences: rule.audiences.clone(),
            jwks,
            locations,
            forward_original_token: rule.forward_original_token.unwrap_or(false),
            output_payload_to_header: rule
                .output_payload_to_header
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.to_ascii_lowercase()),
            output_claim_to_headers: rule
                .output_claim_to_headers
                .iter()
                .map(|c| (c.header.to_ascii_lowercase(), c.claim.clone()))
                .collect(),
        }
    }

    /// Whether a token of issuer `iss` may come from this rule's locations (an empty issuer
    /// allows any: envoy extractor.cc, `JwtIssuerChecker`).
    fn allows(&self, iss: &str) -> bool {
        self.issuer.is_empty() || self.issuer == iss
    }
}

/// Where Envoy looks when a rule names no location: `Authorization: Bearer <token>` and the
/// `access_token` query parameter (envoy extractor.cc, `ExtractorImpl::addProvider`).
pub fn default_locations() -> Vec<TokenLocation> {
    vec![
        TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        },
        TokenLocation::Param("access_token".into()),
    ]
}

/// A token taken apart, before any check against an issuer (jwt_verify_lib
/// `Jwt::parseFromString`: the same checks in the same order, so the same error wins).
struct Parsed<'a> {
    signed: &'a str,
    payload_b64: &'a str,
    alg: String,
    kid: Option<String>,
    payload: serde_json::Value,
    iss: String,
    sub: String,
    aud: Vec<String>,
    nbf: u64,
    exp: u64,
    sig: Vec<u8>,
}

/// Algorithms Envoy accepts in a token header; others are refused before any key is tried.
const ENVOY_ALGS: &[&str] = &[
    "ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256",
    "PS384", "PS512", "EdDSA",
];

fn parse(token: &str) -> Result<Parsed<'_>, JwtError> {
    if token.matches('.').count() != 2 {
        return Err(JwtError::BadFormat);
    }
    let parts: Vec<&str> = token.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(JwtError::BadFormat);
    }
    let header: serde_json::Value =
        serde_json::from_slice(&b64(h).map_err(|_| JwtError::HeaderBadBase64)?)
            .map_err(|_| JwtError::HeaderBadJson)?;
    let alg = match header.get("alg") {
        Some(serde_json::Value::String(a)) => a.clone(),
        _ => return Err(JwtError::HeaderBadAlg),
    };
    if !ENVOY_ALGS.contains(&alg.as_str()) {
        return Err(JwtError::HeaderAlgNotSupported);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(serde_json::Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JwtError::HeaderBadKid),
    };
    let payload: serde_json::Value =
        serde_json::from_slice(&b64(p).map_err(|_| JwtError::PayloadBadBase64)?)
            .map_err(|_| JwtError::PayloadBadJson)?;
    if !payload.is_object() {
        return Err(JwtError::PayloadBadJson);
    }
    let iss = string_claim(&payload, "iss")?;
    let sub = string_claim(&payload, "sub")?;
    time_claim(&payload, "iat")?;
    let nbf = time_claim(&payload, "nbf")?;
    let exp = time_claim(&payload, "exp")?;
    string_claim(&payload, "jti")?;
    let aud = match payload.get("aud") {
        None => Vec::new(),
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(JwtError::AudNotString)?,
        Some(_) => return Err(JwtError::AudNotString),
    };
    let sig = b64(s).map_err(|_| JwtError::SignatureBadBase64)?;
    Ok(Parsed {
        signed: &token[..h.len() + 1 + p.len()],
        payload_b64: p,
        alg,
        kid,
        payload,
        iss,
        sub,
        aud,
        nbf,
        exp,
        sig,
    })
}

/// A string claim; absent is empty.
fn string_claim(payload: &serde_json::Value, k: &'static str) -> Result<String, JwtError> {
    match payload.get(k) {
        None => Ok(String::new()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(JwtError::ClaimNotString(k)),
    }
}

/// A NumericDate claim in whole seconds; absent is 0 (no constraint).
fn time_claim(payload: &serde_json::Value, k: &'static str) -> Result<u64, JwtError> {
    match payload.get(k) {
        None => Ok(0),
        Some(serde_json::Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Ok(u),
            (None, Some(f)) if (0.0..18_446_744_073_709_551_616.0).contains(&f) => Ok(f as u64),
            _ => Err(JwtError::ClaimOutOfRange(k)),
        },
        Some(_) => Err(JwtError::ClaimNotInteger(k)),
    }
}

/// An audience compared as jwt_verify_lib's `CheckAudience` does: without a leading
/// `http://`/`https://` and a trailing `/`.
fn plain_audience(a: &str) -> &str {
    let a = a
        .strip_prefix("http://")
        .or_else(|| a.strip_prefix("https://"))
        .unwrap_or(a);
    a.strip_suffix('/').unwrap_or(a)
}

/// Checks the signature with the issuer's keys (jwt_verify_lib `verifyJwtWithoutTimeChecking`):
/// a key whose `kid` or `alg` differs from the token's is skipped; no usable key at all is
/// `KidAlgMismatch`, usable keys that all fail are `VerificationFail`.
fn check_signature(t: &Parsed<'_>, jwks: &Jwks) -> Result<(), JwtError> {
    let mut matched = false;
    for k in &jwks.keys {
        if let (Some(want), Some(have)) = (&t.kid, &k.kid)
            && !want.is_empty()
            && !have.is_empty()
            && want != have
        {
            continue;
        }
        if k.alg
            .as_deref()
            .is_some_and(|a| !a.is_empty() && a != t.alg)
        {
            continue;
        }
        matched = true;
        let signed = t.signed.as_bytes();
        let ok = match &k.key {
            // meshsim's EC keys are P-256, which only ES256 uses.
            Key::Ec { x, y } if t.alg == "ES256" => {
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signed, &t.sig)
                    .is_ok()
            }
            Key::Rsa { n, e } => {
                let params: &signature::RsaParameters = match t.alg.as_str() {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => continue,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, signed, &t.sig)
                    .is_ok()
            }
            _ => false,
        };
        if ok {
            return Ok(());
        }
    }
    Err(if matched {
        JwtError::VerificationFail
    } else {
        JwtError::KidAlgMismatch
    })
}

/// Verifies `token` for one rule, in Envoy's order: parse, issuer, time (with
/// [`CLOCK_SKEW_SECS`]), audiences, then the signature (envoy authenticator.cc,
/// `AuthenticatorImpl::startVerify` and `verifyKey`). `now` in Unix seconds.
pub fn verify_for(token: &str, issuer: &Issuer, now: u64) -> Result<Claims, JwtError> {
    let t = parse(token)?;
    if !issuer.allows(&t.iss) {
        return Err(JwtError::UnknownIssuer(t.iss));
    }
    check_claims(&t, issuer, now)?;
    check_signature(&t, &issuer.jwks)?;
    Ok(Claims {
        azp: t
            .payload
            .get("azp")
            .and_then(|a| a.as_str())
            .map(str::to_string),
        payload_b64: t.payload_b64.to_string(),
        iss: t.iss,
        sub: t.sub,
        aud: t.aud,
        payload: t.payload,
    })
}

/// Time and audience checks (jwt_verify_lib `Jwt::verifyTimeConstraint`, `CheckAudience`).
fn check_claims(t: &Parsed<'_>, issuer: &Issuer, now: u64) -> Result<(), JwtError> {
    if now.saturating_add(CLOCK_SKEW_SECS) < t.nbf {
        return Err(JwtError::NotYetValid);
    }
    if t.exp != 0 && now > t.exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(JwtError::Expired);
    }
    let allowed = issuer.audiences.is_empty()
        || t.aud.iter().any(|a| {
            issuer
                .audiences
                .iter()
                .any(|want| plain_audience(want) == plain_audience(a))
        });
    if !allowed {
        return Err(JwtError::AudienceNotAllowed);
    }
    Ok(())
}

/// Verifies `token` against whichever of `issuers` its `iss` names. `now` in Unix seconds.
pub fn verify(token: &str, issuers: &[Issuer], now: u64) -> Result<Claims, JwtError> {
    let t = parse(token)?;
    match issuers.iter().find(|i| i.allows(&t.iss)) {
        Some(issuer) => verify_for(token, issuer, now),
        None => Err(JwtError::UnknownIssuer(t.iss)),
    }
}

/// An ES256 signing key (PKCS#8), for minting test tokens.
pub struct SigningKey {
    pair: signature::EcdsaKeyPair,
    pub kid: String,
}

impl SigningKey {
    /// Reads a PKCS#8 P-256 private key, base64 (standard alphabet) or PEM.
    pub fn from_pkcs8_text(text: &str, kid: &str) -> Result<SigningKey, JwtError> {
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| JwtError::Sign(format!("key is not base64: {e}")))?;
        let rng = ring::rand::SystemRandom::new();
        let pair = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &rng,
        )
        .map_err(|e| JwtError::Sign(format!("not a P-256 PKCS#8 key: {e}")))?;
        Ok(SigningKey {
            pair,
            kid: kid.to_string(),
        })
    }

    /// A fresh key (tests).
    pub fn generate(kid: &str) -> Result<(SigningKey, String), JwtError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .map_err(|e| JwtError::Sign(e.to_string()))?;
        let text = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
        Ok((SigningKey::from_pkcs8_text(&text, kid)?, text))
    }

    /// The public half as a JWKS document.
    pub fn jwks_json(&self) -> String {
        let pk = self.pair.public_key().as_ref();
        let (x, y) = (&pk[1..33], &pk[33..65]);
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }]})
        .to_string()
    }

    /// Signs a token with the given claims (`iss`, `sub`, `exp`, ...).
    pub fn mint(&self, claims: &BTreeMap<String, serde_json::Value>) -> Result<String, JwtError> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_string(claims).unwrap_or_default());
        let signed = format!("{h}.{p}");
        let rng = ring::rand::SystemRandom::new();
        let sig = self
            .pair
            .sign(&rng, signed.as_bytes())
            .map_err(|e| JwtError::Sign(e.to_string()))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://auth.example.com";

    fn claims(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
        let mut c = BTreeMap::new();
        c.insert("iss".into(), ISS.into());
        c.insert("sub".into(), "alice".into());
        c.insert("exp".into(), 2000.into());
        for (k, v) in pairs {
            c.insert(k.to_string(), v.clone());
        }
        c
    }

    fn setup(audiences: &[&str]) -> (SigningKey, Issuer) {
        let (key, _) = SigningKey::generate("k1").unwrap();
        let jwks = Jwks::parse(&key.jwks_json()).unwrap();
        let aud = audiences.iter().map(|a| a.to_string()).collect();
        (key, Issuer::new(ISS, aud, jwks))
    }

    /// A token with the given header and payload JSON and a junk signature.
    fn raw(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn valid_token_gives_principal_presenter_and_payload() {
        let (key, issuer) = setup(&[]);
        let t = key
            .mint(&claims(&[
                ("azp", "web-app".into()),
                ("role", "admin".into()),
            ]))
            .unwrap();
        let c = verify_for(&t, &issuer, 1000).unwrap();
        assert_eq!(c.request_principal(), "https://auth.example.com/alice");
        assert_eq!(c.azp.as_deref(), Some("web-app"));
        assert_eq!(c.payload["role"], "admin");
        assert_eq!(c.payload_b64, t.split('.').nth(1).unwrap());
    }

    // jwt_verify_lib Jwt::verifyTimeConstraint with Envoy's default 60 s skew
    // (envoy authenticator.cc: "Default is 60 seconds"): `now > exp + 60` is expired,
    // `now + 60 < nbf` is not yet valid.
    #[test]
    fn expiry_and_not_before_allow_sixty_seconds_of_skew() {
        let (key, issuer) = setup(&[]);
        let t = key.mint(&claims(&[("nbf", 1000.into())])).unwrap();
        assert!(verify_for(&t, &issuer, 2060).is_ok());
        assert_eq!(verify_for(&t, &issuer, 2061), Err(JwtError::Expired));
        assert_eq!(JwtError::Expired.to_string(), "Jwt is expired");
        assert!(verify_for(&t, &issuer, 940).is_ok());
        assert_eq!(verify_for(&t, &issuer, 939), Err(JwtError::NotYetValid));
        assert_eq!(JwtError::NotYetValid.to_string(), "Jwt not yet valid");
    }

    // envoy authenticator.cc startVerify: the issuer is checked before time and signature.
    #[test]
    fn unknown_issuer_is_reported_before_anything_else() {
        let (key, issuer) = setup(&[]);
        let mut c = claims(&[]);
        c.insert("iss".into(), "https://evil.example.com".into());
        c.insert("exp".into(), 1.into());
        let t = key.mint(&c).unwrap();
        let e = verify_for(&t, &issuer, 1000).unwrap_err();
        assert_eq!(
            e,
            JwtError::UnknownIssuer("https://evil.example.com".into())
        );
        assert_eq!(e.to_string(), "Jwt issuer is not configured");
        assert_eq!(e.http_status(), 401);
        assert_eq!(verify(&t, &[issuer], 1000), Err(e));
    }

    // jwt_verify_lib CheckAudience: scheme and trailing slash do not count; a mismatch is
    // answered with 403 (envoy filter.cc onComplete).
    #[test]
    fn audiences_are_compared_without_scheme_and_trailing_slash() {
        let (key, issuer) = setup(&["https://payments.example.com/"]);
        let ok = key
            .mint(&claims(&[("aud", "payments.example.com".into())]))
            .unwrap();
        assert!(verify_for(&ok, &issuer, 1000).is_ok());
        let list = key
            .mint(&claims(&[(
                "aud",
                serde_json::json!(["x", "http://payments.example.com"]),
            )]))
            .unwrap();
        assert!(verify_for(&list, &issuer, 1000).is_ok());
        let bad = key.mint(&claims(&[("aud", "orders".into())])).unwrap();
        let e = verify_for(&bad, &issuer, 1000).unwrap_err();
        assert_eq!(e.to_string(), "Audiences in Jwt are not allowed");
        assert_eq!(e.http_status(), 403);
        let none = key.mint(&claims(&[])).unwrap();
        assert_eq!(
            verify_for(&none, &issuer, 1000),
            Err(JwtError::AudienceNotAllowed)
        );
    }

    // jwt_verify_lib verifyJwtWithoutTimeChecking: keys of another kid are skipped; no usable
    // key is "Jwks doesn't have key to match kid or alg from Jwt", a wrong signature "Jwt
    // verification fails".
    #[test]
    fn forged_signature_and_unknown_kid() {
        let (_, issuer) = setup(&[]);
        let (other, _) = SigningKey::generate("k1").unwrap();
        let forged = other.mint(&claims(&[])).unwrap();
        let e = verify_for(&forged, &issuer, 1000).unwrap_err();
        assert_eq!(e.to_string(), "Jwt verification fails");
        let (stranger, _) = SigningKey::generate("k2").unwrap();
        let t = stranger.mint(&claims(&[])).unwrap();
        let e = verify_for(&t, &issuer, 1000).unwrap_err();
        assert_eq!(e, JwtError::KidAlgMismatch);
        assert_eq!(
            e.to_string(),
            "Jwks doesn't have key to match kid or alg from Jwt"
        );
        // A key that names its alg is not used for another alg.
        let rs = raw(
            r#"{"alg":"RS256","kid":"k1"}"#,
            &format!(r#"{{"iss":"{ISS}"}}"#),
        );
        assert_eq!(
            verify_for(&rs, &issuer, 1000),
            Err(JwtError::KidAlgMismatch)
        );
    }

    // jwt_verify_lib Jwt::parseFromString, each check with its status text (envoy
    // source/common/jwt/status.cc).
    #[test]
    fn malformed_tokens_have_envoys_parse_errors() {
        let (_, issuer) = setup(&[]);
        let p = format!(r#"{{"iss":"{ISS}"}}"#);
        let cases: Vec<(String, &str)> = vec![
            (
                "abc".into(),
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
            ),
            (
                "a.b".into(),
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
            ),
            (
                "!!.e30.c2ln".into(),
                "Jwt header is an invalid Base64url encoded",
            ),
            (raw("nope", &p), "Jwt header is an invalid JSON"),
            (
                raw("{}", &p),
                "Jwt header [alg] field is required and must be a string",
            ),
            (
                raw(r#"{"alg":"none"}"#, &p),
                "Jwt header [alg] is not supported",
            ),
            (
                raw(r#"{"alg":"ES256","kid":1}"#, &p),
                "Jwt header [kid] field is not a string",
            ),
            (
                raw(r#"{"alg":"ES256"}"#, "nope"),
                "Jwt payload is an invalid JSON",
            ),
            (
                raw(r#"{"alg":"ES256"}"#, r#"{"iss":1}"#),
                "Jwt payload [iss] field is not a string",
            ),
            (
                raw(r#"{"alg":"ES256"}"#, r#"{"exp":"x"}"#),
                "Jwt payload [exp] field is not an integer",
            ),
            (
                raw(r#"{"alg":"ES256"}"#, r#"{"nbf":-5}"#),
                "Jwt payload [nbf] field is not a positive 64 bit integer",
            ),
            (
                raw(r#"{"alg":"ES256"}"#, r#"{"aud":[1]}"#),
                "Jwt payload [aud] field is not a string or string list",
            ),
        ];
        for (token, want) in cases {
            let e = verify_for(&token, &issuer, 1000).unwrap_err();
            assert_eq!(e.to_string(), want, "{token}");
            assert_eq!(e.http_status(), 401);
        }
        let good_head = raw(r#"{"alg":"ES256"}"#, &p);
        let bad_sig = format!("{}!!", good_head.trim_end_matches("c2ln"));
        assert_eq!(
            verify_for(&bad_sig, &issuer, 1000).unwrap_err().to_string(),
            "Jwt signature is an invalid Base64url encoded"
        );
    }

    // envoy authenticator.cc addJWTClaimToHeader: strings, whole numbers, booleans; nested
    // names with `.`; objects give nothing.
    #[test]
    fn claim_header_values() {
        let (key, issuer) = setup(&[]);
        let t = key
            .mint(&claims(&[
                ("n", 42.into()),
                ("f", 1.5.into()),
                ("b", true.into()),
                ("user", serde_json::json!({"email": "a@x"})),
            ]))
            .unwrap();
        let c = verify_for(&t, &issuer, 1000).unwrap();
        assert_eq!(c.claim_header_value("sub").as_deref(), Some("alice"));
        assert_eq!(c.claim_header_value("n").as_deref(), Some("42"));
        assert_eq!(c.claim_header_value("f").as_deref(), Some("1.500000"));
        assert_eq!(c.claim_header_value("b").as_deref(), Some("true"));
        assert_eq!(c.claim_header_value("user.email").as_deref(), Some("a@x"));
        assert_eq!(c.claim_header_value("user"), None);
        assert_eq!(c.claim_header_value("nope"), None);
    }

    #[test]
    fn rule_locations_default_as_envoys_and_sort_by_name() {
        let jwks = setup(&[]).1.jwks;
        let rule = crate::manifest::JwtRule {
            issuer: ISS.into(),
            ..Default::default()
        };
        assert_eq!(
            Issuer::from_rule(&rule, jwks.clone()).locations,
            default_locations()
        );
        let rule = crate::manifest::JwtRule {
            issuer: ISS.into(),
            from_params: vec!["tok".into()],
            from_cookies: vec!["session".into()],
            from_headers: vec![crate::manifest::JwtHeader {
                name: "X-Jwt".into(),
                prefix: None,
            }],
            ..Default::default()
        };
        assert_eq!(
            Issuer::from_rule(&rule, jwks).locations,
            vec![
                TokenLocation::Header {
                    name: "x-jwt".into(),
                    prefix: String::new()
                },
                TokenLocation::Param("tok".into()),
                TokenLocation::Cookie("session".into()),
            ]
        );
    }

    #[test]
    fn jwks_errors_say_what_is_wrong() {
        assert!(Jwks::parse("{}").unwrap_err().to_string().contains("keys"));
        assert!(
            Jwks::parse(r#"{"keys":[{"kty":"oct"}]}"#)
                .unwrap_err()
                .to_string()
                .contains("oct")
        );
    }
}
