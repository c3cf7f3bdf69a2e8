//! The mesh CA (istiod's role): a self-signed root made at start, issuing workload leaf
//! certificates whose only subject name is the workload's SPIFFE URI.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, string::Ia5String,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use super::identity::{Identity, TRUST_DOMAIN};

/// How long a workload certificate is valid (Istio's default workload cert TTL).
pub const WORKLOAD_CERT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Back-dating of `notBefore`, so a peer whose clock is slightly behind still accepts a
/// certificate issued a moment ago (Istio back-dates too).
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Why the CA could not make a certificate. Only a bug or a broken crypto backend causes
/// this; there is nothing to fix in the scenario.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(
        "the mesh CA could not generate a key or sign a certificate: {0}; this is a meshsim bug, please report it"
    )]
    Rcgen(#[from] rcgen::Error),
    #[error(
        "the mesh CA's own root is not a usable trust anchor: {0}; this is a meshsim bug, please report it"
    )]
    Trust(#[source] rustls::Error),
    #[error(
        "the mesh CA's new key cannot sign TLS handshakes: {0}; this is a meshsim bug, please report it"
    )]
    Key(#[source] rustls::Error),
    #[error("identity `{0}` cannot be written as a URI SAN: {1}; use names of [A-Za-z0-9-._]")]
    BadUri(String, rcgen::Error),
}

/// A workload's certificate: its identity and the chain and key issued to it now. Every proxy
/// holding a clone sees a renewal at its next handshake, as Envoy's SDS and ztunnel's cert
/// manager hand a rotated certificate to new connections while established ones carry on.
#[derive(Clone)]
pub struct WorkloadCert {
    inner: Arc<WorkloadCertInner>,
}

struct WorkloadCertInner {
    identity: Identity,
    current: RwLock<Arc<Issued>>,
}

/// One issuance: the chain to present (leaf only: the root is the trust anchor every peer
/// holds), its key, the two as rustls serves them, and when it was issued for how long.
pub struct Issued {
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    pub certified: Arc<CertifiedKey>,
    pub issued_at: SystemTime,
    pub ttl: Duration,
    /// The first moment peers refuse it: X.509 keeps whole seconds and a verifier accepts
    /// `notAfter`'s own second, so one second past the whole second at or before
    /// `issued_at + ttl`.
    pub expires: SystemTime,
}

impl Issued {
    /// Past `notAfter`: peers refuse it in the handshake.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        now >= self.expires
    }

    /// When a proxy asks for the next one: at half its life, as ztunnel does
    /// (istio/ztunnel src/tls/certificate.rs `refresh_at`, `not_before + valid_for / 2`) and
    /// istio-agent's default `SECRET_GRACE_PERIOD_RATIO` of 0.5. Counted from issuance, not
    /// from the back-dated `notBefore`, which would put a short TTL's half-life in the past.
    pub fn refresh_at(&self) -> SystemTime {
        self.issued_at + self.ttl / 2
    }
}

impl WorkloadCert {
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The issuance in force.
    pub fn current(&self) -> Arc<Issued> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The chain to present, leaf first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current().chain.clone()
    }

    /// A copy of the private key, as rustls takes ownership of one per config.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.current().key.clone_key())
    }
}

impl std::fmt::Debug for WorkloadCert {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadCert")
            .field("identity", &self.inner.identity.to_string())
            .finish_non_exhaustive()
    }
}

/// The mesh's certificate authority. Cloning shares the same root.
#[derive(Clone)]
pub struct Ca {
    inner: Arc<CaInner>,
}

struct CaInner {
    issuer: Issuer<'static, KeyPair>,
    root: CertificateDer<'static>,
    roots: Arc<rustls::RootCertStore>,
}

impl Ca {
    /// Makes a fresh self-signed root (ECDSA P-256: key generation and signing are cheap,
    /// which matters when hundreds of workloads get certificates at start).
    pub fn new() -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, TRUST_DOMAIN);
        dn.push(DnType::CommonName, "meshsim root CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + Duration::from_secs(10 * 365 * 24 * 3600);
        let root = params.self_signed(&key)?.der().clone();
        let mut store = rustls::RootCertStore::empty();
        store.add(root.clone()).map_err(CaError::Trust)?;
        Ok(Ca {
            inner: Arc::new(CaInner {
                issuer: Issuer::new(params, key),
                root,
                roots: Arc::new(store),
            }),
        })
    }

    /// Issues a leaf for `id`: its only SAN is the SPIFFE URI, empty subject (as Istio's),
    /// valid `ttl`, usable as both TLS server and client.
    pub fn issue(&self, id: &Identity, ttl: Duration) -> Result<WorkloadCert, CaError> {
        Ok(WorkloadCert {
            inner: Arc::new(WorkloadCertInner {
                identity: id.clone(),
                current: RwLock::new(Arc::new(self.sign(id, ttl)?)),
            }),
        })
    }

    /// Renews `cert` (a fresh key, a fresh TTL) in place: every proxy holding it presents the
    /// new one from its next handshake on.
    pub fn renew(&self, cert: &WorkloadCert) -> Result<(), CaError> {
        let ttl = cert.current().ttl;
        let issued = Arc::new(self.sign(cert.identity(), ttl)?);
        *cert
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = issued;
        Ok(())
    }

    fn sign(&self, id: &Identity, ttl: Duration) -> Result<Issued, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let uri = id.to_string();
        let san = Ia5String::try_from(uri.clone()).map_err(|e| CaError::BadUri(uri, e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(san)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let issued_at = SystemTime::now();
        let now = OffsetDateTime::from(issued_at);
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + ttl;
        let not_after = (issued_at + ttl)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(not_after + 1);
        let leaf = params.signed_by(&key, &self.inner.issuer)?;
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        let chain = vec![leaf.der().clone()];
        let signer =
            rustls::crypto::ring::sign::any_supported_type(&PrivateKeyDer::Pkcs8(key.clone_key()))
                .map_err(CaError::Key)?;
        Ok(Issued {
            certified: Arc::new(CertifiedKey::new(chain.clone(), signer)),
            chain,
            key,
            issued_at,
            ttl,
            expires,
        })
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &CertificateDer<'static> {
        &self.inner.root
    }

    /// A trust store holding only this CA's root.
    pub fn root_store(&self) -> Arc<rustls::RootCertStore> {
        self.inner.roots.clone()
    }
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn leaf_has_only_the_spiffe_uri_and_the_usages() {
        let ca = Ca::new().expect("ca");
        let id = Identity::new("shop", "cart");
        let cert = ca.issue(&id, WORKLOAD_CERT_TTL).expect("issue");
        let chain = cert.chain();
        let (_, x) = X509Certificate::from_der(&chain[0]).expect("parse");
        let san = x.subject_alternative_name().expect("ext").expect("san");
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::URI("spiffe://cluster.local/ns/shop/sa/cart")]
        );
        let ku = x.key_usage().expect("ku").expect("ku present").value;
        assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
        let eku = x.extended_key_usage().expect("eku").expect("present").value;
        assert!(eku.server_auth && eku.client_auth);
        let secs = x.validity().not_after.timestamp() - x.validity().not_before.timestamp();
        assert_eq!(secs as u64, (WORKLOAD_CERT_TTL + CLOCK_SKEW).as_secs());
        assert_eq!(
            x.issuer(),
            X509Certificate::from_der(ca.root_der())
                .expect("root")
                .1
                .subject()
        );
    }

    #[test]
    fn a_mesh_of_service_accounts_each_gets_its_own_identity() {
        // A cluster of a few hundred service accounts: every certificate names its own
        // SPIFFE identity in its URI SAN and has a key of its own.
        let ca = Ca::new().expect("ca");
        let n = 300;
        let mut keys = std::collections::BTreeSet::new();
        for i in 0..n {
            let id = Identity::new("ns", format!("sa{i}"));
            let cert = ca.issue(&id, WORKLOAD_CERT_TTL).expect("issue");
            let leaf = &cert.chain()[0];
            assert_eq!(crate::mesh::tls::cert_identity(leaf).as_ref(), Some(&id));
            assert_eq!(cert.identity(), &id);
            keys.insert(cert.key().secret_der().to_vec());
        }
        assert_eq!(keys.len(), n, "no two workloads share a key");
    }
}
