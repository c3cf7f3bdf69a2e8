//! nftables rule sets, applied inside a namespace by the real `nft` program.

use std::io::{self, Write};
use std::process::{Command, Stdio};

use crate::netns::{NetNs, NetnsError};

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "the `nft` program is not installed; meshsim programs nftables with it. Install the \
         `nftables` package (Debian/Ubuntu: `apt-get install nftables`)"
    )]
    Missing,
    #[error("nft failed in namespace {ns}: {stderr}\nrule set was:\n{rules}")]
    Failed {
        ns: String,
        stderr: String,
        rules: String,
    },
    #[error("running nft in namespace {ns}: {source}")]
    Io { ns: String, source: io::Error },
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// Checks that `nft` can be run; call before starting anything that needs it.
pub fn check_installed() -> Result<(), NftError> {
    match Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err(NftError::Missing),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(NftError::Missing),
        Err(_) => Err(NftError::Missing),
    }
}

/// Applies `rules` (nft's own syntax, as `nft -f` reads it) inside `ns`, atomically.
pub fn apply(ns: &NetNs, rules: &str) -> Result<(), NftError> {
    // A child inherits the network namespace of the thread that forks it.
    ns.run(|| {
        let io = |source| NftError::Io {
            ns: ns.name().to_string(),
            source,
        };
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    NftError::Missing
                } else {
                    io(e)
                }
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(rules.as_bytes()).map_err(io)?;
        }
        let out = child.wait_with_output().map_err(io)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NftError::Failed {
                ns: ns.name().to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                rules: rules.to_string(),
            })
        }
    })?
}

/// Runs `nft ARGS` inside `ns` and returns what it printed (a listing, e.g. counters).
pub fn output(ns: &NetNs, args: &[&str]) -> Result<String, NftError> {
    ns.run(|| {
        let out = Command::new("nft").args(args).output().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                NftError::Missing
            } else {
                NftError::Io {
                    ns: ns.name().to_string(),
                    source: e,
                }
            }
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(NftError::Failed {
                ns: ns.name().to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                rules: format!("nft {}", args.join(" ")),
            })
        }
    })?
}
