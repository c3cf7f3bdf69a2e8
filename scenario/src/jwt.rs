//! JWT validation for `RequestAuthentication`, as Envoy's jwt_authn filter does it: a token in
//! `Authorization: Bearer …` is checked against the issuer's JWKS (signature, `iss`, `exp`,
//! `nbf`, audiences); a present but invalid token is refused (401), an absent one passes
//! unauthenticated (policies then decide with `requestPrincipals`).
//!
//! Keys: ES256 (EC P-256) and RS256 (RSA), verified with ring. Minting (ES256) exists for
//! tests and `meshsim token`, so users can make tokens for their own JWKS.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, KeyPair};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JSON Web Key Set: {0}")]
    BadJwks(String),
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token signed with unsupported algorithm `{0}` (meshsim verifies ES256 and RS256)")]
    Algorithm(String),
    #[error("no key in the issuer's JWKS verifies the token")]
    Signature,
    #[error("token issuer `{0}` is not configured")]
    Issuer(String),
    #[error("token is expired")]
    Expired,
    #[error("token is not yet valid")]
    NotYetValid,
    #[error("token audience is not allowed")]
    Audience,
    #[error("cannot sign: {0}")]
    Sign(String),
}

#[derive(Debug, Clone)]
enum Key {
    Ec { x: Vec<u8>, y: Vec<u8> },
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    key: Key,
}

/// A parsed JSON Web Key Set.
#[derive(Debug, Clone)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

fn b64(s: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed("bad base64url"))
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
            keys.push(Jwk { kid, key });
        }
        if keys.is_empty() {
            return Err(JwtError::BadJwks("its `keys` array is empty".into()));
        }
        Ok(Jwks { keys })
    }
}

/// The claims meshsim uses from a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
}

impl Claims {
    /// Istio's request principal: `<iss>/<sub>`.
    pub fn request_principal(&self) -> String {
        format!("{}/{}", self.iss, self.sub)
    }
}

/// One issuer's rule: its keys and allowed audiences (empty: any).
#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks: Jwks,
}

/// Verifies `token` against the issuers configured for a workload. `now` in Unix seconds.
pub fn verify(token: &str, issuers: &[Issuer], now: u64) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("a JWT has three dot-separated parts"));
    };
    let header: serde_json::Value =
        serde_json::from_slice(&b64(h)?).map_err(|_| JwtError::Malformed("header is not JSON"))?;
    let payload: serde_json::Value =
        serde_json::from_slice(&b64(p)?).map_err(|_| JwtError::Malformed("payload is not JSON"))?;
    let sig = b64(s)?;
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    let kid = header.get("kid").and_then(|a| a.as_str());
    let iss = payload.get("iss").and_then(|a| a.as_str()).unwrap_or("");
    let Some(issuer) = issuers.iter().find(|i| i.issuer == iss) else {
        return Err(JwtError::Issuer(iss.to_string()));
    };
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    let ok = issuer
        .jwks
        .keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        .any(|k| match (alg, &k.key) {
            ("ES256", Key::Ec { x, y }) => {
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signed, &sig)
                    .is_ok()
            }
            ("RS256", Key::Rsa { n, e }) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, &sig)
                .is_ok(),
            _ => false,
        });
    if !ok {
        if alg != "ES256" && alg != "RS256" {
            return Err(JwtError::Algorithm(alg.to_string()));
        }
        return Err(JwtError::Signature);
    }
    let num = |k: &str| payload.get(k).and_then(|v| v.as_u64());
    if let Some(exp) = num("exp")
        && now >= exp
    {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = num("nbf")
        && now < nbf
    {
        return Err(JwtError::NotYetValid);
    }
    let aud: Vec<String> = match payload.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    if !issuer.audiences.is_empty() && !aud.iter().any(|a| issuer.audiences.contains(a)) {
        return Err(JwtError::Audience);
    }
    Ok(Claims {
        iss: iss.to_string(),
        sub: payload
            .get("sub")
            .and_then(|a| a.as_str())
            .unwrap_or("")
            .to_string(),
        aud,
    })
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

    fn claims(iss: &str, exp: u64) -> BTreeMap<String, serde_json::Value> {
        let mut c = BTreeMap::new();
        c.insert("iss".into(), iss.into());
        c.insert("sub".into(), "alice".into());
        c.insert("exp".into(), exp.into());
        c
    }

    #[test]
    fn valid_forged_expired_and_unknown_issuer() {
        let (key, _) = SigningKey::generate("k1").unwrap();
        let (other, _) = SigningKey::generate("k1").unwrap();
        let issuers = [Issuer {
            issuer: "https://auth.example.com".into(),
            audiences: vec![],
            jwks: Jwks::parse(&key.jwks_json()).unwrap(),
        }];
        let good = key.mint(&claims("https://auth.example.com", 2000)).unwrap();
        let c = verify(&good, &issuers, 1000).unwrap();
        assert_eq!(c.request_principal(), "https://auth.example.com/alice");
        let forged = other
            .mint(&claims("https://auth.example.com", 2000))
            .unwrap();
        assert_eq!(verify(&forged, &issuers, 1000), Err(JwtError::Signature));
        assert_eq!(verify(&good, &issuers, 3000), Err(JwtError::Expired));
        let stranger = key.mint(&claims("https://evil.example.com", 2000)).unwrap();
        assert!(matches!(
            verify(&stranger, &issuers, 1000),
            Err(JwtError::Issuer(_))
        ));
        assert!(verify("abc", &issuers, 1000).is_err());
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
