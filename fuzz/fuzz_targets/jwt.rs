//! JWKS parsing and JWT verification (RequestAuthentication): the input is `JWKS \0 token`
//! or just `token`. A JWKS part that parses becomes the keys of the issuer
//! `https://auth.example.com`; without one (no NUL, or a JWKS that does not parse) that
//! issuer has the keys of `scenarios/manifests/payment-jwks.json`. A second issuer with the
//! same keys requires the audience `payments`, so the audience check is reached too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scenario::jwt::{self, Issuer, Jwks};

const FIXED_JWKS: &str = include_str!("../../scenarios/manifests/payment-jwks.json");
/// A fixed "now" (2023-11-14), so `exp`/`nbf` checks do not depend on the clock.
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let fixed = Jwks::parse(FIXED_JWKS).expect("the bundled JWKS parses");
    let (jwks, token) = match data.iter().position(|b| *b == 0) {
        Some(i) => {
            let parsed = std::str::from_utf8(&data[..i])
                .ok()
                .and_then(|t| Jwks::parse(t).ok());
            (parsed.unwrap_or_else(|| fixed.clone()), &data[i + 1..])
        }
        None => (fixed.clone(), data),
    };
    let Ok(token) = std::str::from_utf8(token) else {
        return;
    };
    let issuers = [
        Issuer::new("https://auth.example.com", Vec::new(), jwks),
        Issuer::new("https://aud.example.com", vec!["payments".into()], fixed),
    ];
    match jwt::verify(token, &issuers, NOW) {
        Ok(claims) => {
            assert!(
                issuers.iter().any(|i| i.issuer == claims.iss),
                "a verified token's issuer is a configured one"
            );
            let _ = claims.request_principal();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
