//! `meshsim token`: make ES256 test keys, their JWKS, and tokens signed with them, to exercise
//! RequestAuthentication (e.g. `curl -H "authorization: Bearer $(meshsim token ...)"`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use scenario::jwt::SigningKey;

#[derive(clap::Args)]
pub struct Args {
    /// The private key (PKCS#8 P-256, base64 or PEM), e.g. scenarios/manifests/payment-jwt-key.pem.
    #[arg(long)]
    pub key: PathBuf,
    /// Create a new key at --key (refuses to overwrite) and print its JWKS.
    #[arg(long)]
    pub new_key: bool,
    /// Print the key's JWKS instead of a token.
    #[arg(long)]
    pub jwks: bool,
    /// Key id (`kid`) in the JWKS and the token header.
    #[arg(long, default_value = "meshsim-test")]
    pub kid: String,
    /// `iss` claim.
    #[arg(long, default_value = "https://auth.example.com")]
    pub issuer: String,
    /// `sub` claim.
    #[arg(long, default_value = "test-user")]
    pub subject: String,
    /// `aud` claim (optional).
    #[arg(long)]
    pub audience: Option<String>,
    /// Lifetime (e.g. `1h`); without it the token does not expire.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ttl: Option<std::time::Duration>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.new_key {
        if a.key.exists() {
            anyhow::bail!(
                "{} exists; pick another path or delete it first",
                a.key.display()
            );
        }
        let (key, text) = SigningKey::generate(&a.kid)?;
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            text.as_bytes()
                .chunks(64)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::fs::write(&a.key, pem).with_context(|| format!("cannot write {}", a.key.display()))?;
        println!("{}", key.jwks_json());
        return Ok(ExitCode::SUCCESS);
    }
    let text = std::fs::read_to_string(&a.key)
        .with_context(|| format!("cannot read key {}", a.key.display()))?;
    let key = SigningKey::from_pkcs8_text(&text, &a.kid)
        .with_context(|| format!("{} is not a usable key", a.key.display()))?;
    if a.jwks {
        println!("{}", key.jwks_json());
        return Ok(ExitCode::SUCCESS);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = BTreeMap::new();
    claims.insert("iss".to_string(), a.issuer.into());
    claims.insert("sub".to_string(), a.subject.into());
    claims.insert("iat".to_string(), now.into());
    if let Some(aud) = a.audience {
        claims.insert("aud".to_string(), aud.into());
    }
    if let Some(ttl) = a.ttl {
        claims.insert("exp".to_string(), (now + ttl.as_secs()).into());
    }
    println!("{}", key.mint(&claims)?);
    Ok(ExitCode::SUCCESS)
}
