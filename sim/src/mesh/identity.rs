//! Workload identities in SPIFFE form, as Istio names them.

use std::fmt;
use std::str::FromStr;

/// The trust domain of every identity meshsim issues (Istio's default).
pub const TRUST_DOMAIN: &str = "cluster.local";

/// A workload's identity: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

/// Why a string is not an Istio SPIFFE identity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{input}` is not an Istio SPIFFE identity ({reason}); \
     expected spiffe://<trust domain>/ns/<namespace>/sa/<service account>"
)]
pub struct IdentityError {
    pub input: String,
    pub reason: &'static str,
}

impl Identity {
    /// An identity in the `cluster.local` trust domain.
    pub fn new(namespace: impl Into<String>, service_account: impl Into<String>) -> Self {
        Identity {
            trust_domain: TRUST_DOMAIN.to_string(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        }
    }

    /// The form AuthorizationPolicy `principals` match: `<td>/ns/<ns>/sa/<sa>`.
    pub fn principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }

    /// Parses `spiffe://<td>/ns/<ns>/sa/<sa>`; nothing else is accepted (no query, fragment,
    /// port, extra path segments or empty parts), so a certificate with a looser URI SAN
    /// never authenticates as a mesh workload.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let err = |reason| IdentityError {
            input: s.to_string(),
            reason,
        };
        let rest = s
            .strip_prefix("spiffe://")
            .ok_or_else(|| err("it does not start with spiffe://"))?;
        let mut parts = rest.split('/');
        let td = parts.next().unwrap_or_default();
        let (ns_kw, ns, sa_kw, sa) = (parts.next(), parts.next(), parts.next(), parts.next());
        if parts.next().is_some() {
            return Err(err("it has path segments after the service account"));
        }
        if ns_kw != Some("ns") || sa_kw != Some("sa") {
            return Err(err("its path is not /ns/<namespace>/sa/<service account>"));
        }
        let (ns, sa) = (ns.unwrap_or_default(), sa.unwrap_or_default());
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        if !ok(td) {
            return Err(err(
                "the trust domain is empty or has characters beyond [A-Za-z0-9-._]",
            ));
        }
        if !ok(ns) || !ok(sa) {
            return Err(err(
                "the namespace or service account is empty or has characters beyond [A-Za-z0-9-._]",
            ));
        }
        Ok(Identity {
            trust_domain: td.to_string(),
            namespace: ns.to_string(),
            service_account: sa.to_string(),
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for Identity {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Identity::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_principal() {
        let id = Identity::new("shop", "payments");
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/payments");
        assert_eq!(id.principal(), "cluster.local/ns/shop/sa/payments");
        assert_eq!(Identity::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "https://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/ns/a/sa/",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe://cluster.local/ns/a/sa/b/c",
            "spiffe://cluster.local/sa/a/ns/b",
            "spiffe:///ns/a/sa/b",
            "spiffe://cluster.local/ns/a/sa/b?x=1",
            "spiffe://cluster.local:8080/ns/a/sa/b",
            "cluster.local/ns/a/sa/b",
        ] {
            let e = Identity::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("expected spiffe://"), "{e}");
        }
    }
}
