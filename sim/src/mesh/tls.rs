//! mTLS as the mesh does it: TLS 1.3 only, both sides present a workload certificate chained
//! to the mesh CA, and a peer is named by the SPIFFE URI SAN of its certificate (DNS names
//! and subjects play no part).
//!
//! Expected server identity: a [`ClientConfig`] made here verifies that the server's chain
//! leads to the mesh CA and carries exactly one SPIFFE URI SAN, but not *which* identity it
//! is; [`connect`] checks that after the handshake against the set the caller expects, and
//! closes the connection on a mismatch. That keeps one config (and so one session-resumption
//! cache) per source workload instead of one per destination. The TLS `ServerName` is the
//! destination IP, used only as the resumption-cache key.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, CommonState, DigitallySignedStruct, DistinguishedName,
    RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::ca::{Ca, WorkloadCert};
use super::identity::Identity;

/// How long a TLS handshake may take before the connection is dropped; a peer that stalls
/// mid-handshake must not pin a task forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a mesh TLS config could not be built or a mesh TLS connection failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot build the mesh TLS config: {0}; the workload certificate or key is unusable, re-issue it from the mesh CA"
    )]
    Config(#[source] rustls::Error),
    #[error(
        "mesh TLS handshake failed: {0}; the peer is not a mesh workload of this CA, offers no TLS 1.3, or closed the connection"
    )]
    Handshake(#[source] io::Error),
    #[error("mesh TLS handshake did not finish within {0:?}; the peer stalled")]
    Timeout(Duration),
    #[error(
        "the peer authenticated as {got} but {expected} was expected; check the destination's service account in the workload registry"
    )]
    UnexpectedPeer { expected: String, got: Identity },
    #[error(
        "the peer presented no usable SPIFFE identity; it must present a workload certificate from the mesh CA"
    )]
    NoPeerIdentity,
}

/// The ring provider, built once (building it allocates the suite tables).
fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn algs() -> WebPkiSupportedAlgorithms {
    provider().signature_verification_algorithms
}

/// The SPIFFE identity a certificate names: its SAN extension must hold exactly one entry,
/// a URI that parses as an [`Identity`].
pub fn cert_identity(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, x) = X509Certificate::from_der(cert).ok()?;
    let san = x.subject_alternative_name().ok()??;
    match san.value.general_names.as_slice() {
        [GeneralName::URI(uri)] => Identity::parse(uri).ok(),
        _ => None,
    }
}

/// The identity of the peer of an established connection (either side), from the URI SAN of
/// the certificate it presented.
pub fn peer_identity(conn: &CommonState) -> Option<Identity> {
    conn.peer_certificates()?.first().and_then(cert_identity)
}

fn not_spiffe() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        io::Error::other("certificate must carry exactly one SAN, a SPIFFE URI"),
    ))))
}

/// Server side: webpki chain verification to the CA (with the clientAuth EKU), then the
/// SPIFFE-only SAN rule.
#[derive(Debug)]
struct MeshClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// Counted here rather than where the server's certificate is resolved: rustls resolves
    /// it before deciding to resume, but asks for the client's only in a full handshake.
    handshakes: Handshakes,
}

impl ClientCertVerifier for MeshClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        cert_identity(end_entity).ok_or_else(not_spiffe)?;
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Client side: chain to the CA (with the serverAuth EKU) and the SPIFFE-only SAN rule; the
/// TLS server name is deliberately not matched (mesh servers have no DNS names).
#[derive(Debug)]
struct MeshServerVerifier {
    roots: Arc<RootCertStore>,
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            algs().all,
        )?;
        cert_identity(end_entity).ok_or_else(not_spiffe)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algs().supported_schemes()
    }
}

/// A TLS 1.3-only server config presenting `cert`, requiring a client certificate from `ca`
/// with exactly one SPIFFE URI SAN, offering `alpn` (a client offering ALPN with none of
/// these is refused in the handshake). Session tickets are on, so clients resume.
pub fn server_config(
    cert: &WorkloadCert,
    ca: &Ca,
    alpn: &[&[u8]],
    handshakes: &Handshakes,
) -> Result<Arc<ServerConfig>, TlsError> {
    let inner = WebPkiClientVerifier::builder_with_provider(ca.root_store(), provider())
        .build()
        .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(Arc::new(MeshClientVerifier {
            inner,
            handshakes: handshakes.clone(),
        }))
        .with_cert_resolver(Arc::new(Current(cert.clone(), None)));
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::Config)?;
    Ok(Arc::new(cfg))
}

/// A TLS 1.3-only client config presenting `cert`, accepting servers whose chain leads to
/// `ca` and that carry exactly one SPIFFE URI SAN; which identity is checked by [`connect`].
/// With `resume`, resumption uses rustls's default in-memory session cache (Envoy's upstream
/// TLS resumes by default); ztunnel turns it off (istio/ztunnel src/tls/certificate.rs,
/// `Resumption::disabled()`), so each of its connections verifies the peer's certificate.
pub fn client_config(
    cert: &WorkloadCert,
    ca: &Ca,
    alpn: &[&[u8]],
    resume: bool,
    handshakes: &Handshakes,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(MeshServerVerifier {
            roots: ca.root_store(),
        }))
        .with_client_cert_resolver(Arc::new(Current(cert.clone(), Some(handshakes.clone()))));
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if !resume {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(cfg))
}

/// Full mTLS handshakes a proxy made, either side: the costly ones (a signature and a chain
/// check each). The client counts when the server asks for its certificate, the server when
/// it checks the client's: both happen only in a full handshake, so a resumed session is
/// not counted; a handshake the peer then refuses is.
pub type Handshakes = Arc<AtomicU64>;

/// Presents whatever `WorkloadCert` holds at each handshake, so a renewal reaches new
/// connections without rebuilding any proxy's config; a client's counts its handshakes.
#[derive(Debug)]
struct Current(WorkloadCert, Option<Handshakes>);

impl Current {
    fn present(&self) -> Arc<CertifiedKey> {
        if let Some(n) = &self.1 {
            n.fetch_add(1, Ordering::Relaxed);
        }
        self.0.current().certified.clone()
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.present())
    }
}

impl ResolvesClientCert for Current {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.present())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The server side of a mesh mTLS connection: handshakes and returns the stream with the
/// client's identity.
pub async fn accept<S>(
    io: S,
    config: Arc<ServerConfig>,
) -> Result<(tokio_rustls::server::TlsStream<S>, Identity), TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hs = tokio_rustls::TlsAcceptor::from(config).accept(io);
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, hs)
        .await
        .map_err(|_| TlsError::Timeout(HANDSHAKE_TIMEOUT))?
        .map_err(TlsError::Handshake)?;
    let id = peer_identity(tls.get_ref().1).ok_or(TlsError::NoPeerIdentity)?;
    Ok((tls, id))
}

/// The client side of a mesh mTLS connection over `tcp`: handshakes, then requires the
/// server's identity to be one of `expected` (empty: any workload of the mesh CA). Returns
/// the stream and the server's identity.
pub async fn connect(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    expected: &[Identity],
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Identity), TlsError> {
    let dst = tcp.peer_addr().map_err(TlsError::Handshake)?;
    connect_io(tcp, dst, config, expected).await
}

/// [`connect`] over any byte stream; `dst` keys the session-resumption cache.
pub async fn connect_io<S>(
    io: S,
    dst: SocketAddr,
    config: Arc<ClientConfig>,
    expected: &[Identity],
) -> Result<(tokio_rustls::client::TlsStream<S>, Identity), TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::IpAddress(dst.ip().into());
    let hs = tokio_rustls::TlsConnector::from(config).connect(name, io);
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, hs)
        .await
        .map_err(|_| TlsError::Timeout(HANDSHAKE_TIMEOUT))?
        .map_err(TlsError::Handshake)?;
    let got = peer_identity(tls.get_ref().1).ok_or(TlsError::NoPeerIdentity)?;
    if !expected.is_empty() && !expected.contains(&got) {
        // Dropping the stream closes the TCP connection; nothing was sent on it.
        let expected = expected
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(TlsError::UnexpectedPeer { expected, got });
    }
    Ok((tls, got))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_spiffe_uri_san_names_a_peer() {
        let uri = |u: &str| {
            rcgen::SanType::URI(rcgen::string::Ia5String::try_from(u.to_string()).expect("ia5"))
        };
        let make = |sans: Vec<rcgen::SanType>| {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut p = rcgen::CertificateParams::default();
            p.subject_alt_names = sans;
            p.self_signed(&key).expect("cert").der().clone()
        };
        let dns = rcgen::SanType::DnsName("cart.shop.svc".try_into().expect("dns"));
        let id = "spiffe://cluster.local/ns/shop/sa/cart";
        assert_eq!(
            cert_identity(&make(vec![uri(id)])),
            Some(Identity::new("shop", "cart"))
        );
        assert_eq!(cert_identity(&make(vec![dns.clone()])), None);
        assert_eq!(cert_identity(&make(vec![uri(id), dns])), None);
        assert_eq!(cert_identity(&make(vec![uri("https://cart.shop")])), None);
        assert_eq!(cert_identity(&make(vec![])), None);
    }
}
