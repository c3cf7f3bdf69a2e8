//! The Istio and Gateway API objects meshsim models, read from real multi-document manifests:
//! `Namespace`, `Gateway` (class `istio-waypoint`), `AuthorizationPolicy`,
//! `RequestAuthentication` and `PeerAuthentication`. Any other kind is kept as
//! [`Ignored`] and reported by name, never dropped silently.
//!
//! Field names and shapes follow the upstream CRDs, so a manifest that works with Istio reads
//! here unchanged; fields meshsim does not act on are accepted where Istio has them and listed
//! in the types so a typo still fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::units::Size;
use crate::yaml::{Diagnostic, Document, LocIndex, parse_doc, split_documents};

/// Where an object was read from, so later checks (a policy naming a missing service) point
/// at the right line.
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: PathBuf,
    pub index: Arc<LocIndex>,
}

impl Origin {
    /// A diagnostic at the value of `path` in this object's document.
    pub fn at(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let l = self.index.value_loc(path);
        Diagnostic {
            file: self.file.clone(),
            line: l.line,
            column: l.column,
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// A diagnostic at the key of `path` (for a field that should not be there).
    pub fn at_key(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let l = self.index.key_loc(path);
        Diagnostic {
            file: self.file.clone(),
            line: l.line,
            column: l.column,
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub fn line(&self) -> usize {
        self.index.value_loc("").line
    }
}

pub use crate::meta::ObjectMeta;

/// The fields every Kubernetes object has; read first to pick the kind.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<LooseMeta>,
}

#[derive(Debug, Deserialize)]
struct LooseMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Namespace

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing)]
    pub spec: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------
// Gateway (waypoints)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: GatewaySpec,
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySpec {
    pub gateway_class_name: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    pub port: u16,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<serde_json::Value>,
}

/// What a waypoint serves (`istio.io/waypoint-for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaypointFor {
    Service,
    Workload,
    All,
    None,
}

/// `proxy.istio.io/config` on a waypoint: the parts meshsim acts on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceList>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuQuantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Size>,
}

/// A Kubernetes CPU quantity: `200m`, `1`, `0.5`, kept in millicores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuQuantity(pub u32);

impl Serialize for CpuQuantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}m", self.0))
    }
}

impl<'de> Deserialize<'de> for CpuQuantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = CpuQuantity;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a CPU quantity such as `200m`, `1` or `0.5`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CpuQuantity, E> {
                parse_cpu(v).map(CpuQuantity).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<CpuQuantity, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<CpuQuantity, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<CpuQuantity, E> {
                parse_cpu(&v.to_string())
                    .map(CpuQuantity)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a Kubernetes CPU quantity into millicores.
pub fn parse_cpu(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('m') {
        Some(n) => (n, 1.0),
        None => (t, 1000.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{t}` is not a CPU quantity; write it like `200m`, `1` or `0.5`"))?;
    let millis = v * scale;
    if !(millis > 0.0 && millis < 1_000_000.0) || millis.fract() != 0.0 {
        return Err(format!(
            "`{t}` is not a usable CPU quantity; it must be a whole number of millicores above 0"
        ));
    }
    Ok(millis as u32)
}

// ---------------------------------------------------------------------------------------------
// Security policies

pub use crate::meta::WorkloadSelector;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    pub kind: String,
    #[serde(default)]
    pub group: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: AuthorizationPolicySpec,
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    #[default]
    Allow,
    Deny,
    Audit,
    Custom,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<TargetRef>,
    #[serde(default)]
    pub action: Action,
    /// The ext_authz provider of a CUSTOM policy (a mesh config `extensionProviders` name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// `None`: no `rules` field (ALLOW matches nothing, DENY nothing); `Some([])` likewise;
    /// `Some([{}])` matches everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provider {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<From>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<To>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct From {
    #[serde(default)]
    pub source: Source,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
    /// `<sa>` (the policy's namespace) or `<ns>/<sa>`, exact (Istio 1.25+).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct To {
    #[serde(default)]
    pub operation: Operation,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<PortString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// A port in a policy: Istio's CRD types it as a string (`"8080"`); YAML authors often write
/// a number. Both read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortString(pub u16);

impl Serialize for PortString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for PortString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PortString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a port number 1..65535")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortString, E> {
                match v.trim().parse::<u16>() {
                    Ok(p) if p > 0 => Ok(PortString(p)),
                    _ => Err(E::custom(format!("`{v}` is not a port number 1..65535"))),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortString, E> {
                match u16::try_from(v) {
                    Ok(p) if p > 0 => Ok(PortString(p)),
                    _ => Err(E::custom(format!("`{v}` is not a port number 1..65535"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortString, E> {
                self.visit_u64(u64::try_from(v).unwrap_or(0))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    pub key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

/// `when` keys meshsim evaluates: Istio's (`pkg/config/security/security.go`,
/// `ValidateAttribute`) except `experimental.envoy.filters.*` (Envoy metadata) and
/// `source.trustDomain` (newer than 1.24). `source.serviceAccount` is Istio 1.25+.
pub const CONDITION_KEYS: &[&str] = &[
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.serviceAccount",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims",
    "request.headers",
    "destination.ip",
    "destination.port",
    "connection.sni",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthentication {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RequestAuthenticationSpec,
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthenticationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<TargetRef>,
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_original_token: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// Claims Istio splits on spaces before matching (`scope`, `permission` always); read, not
    /// applied (listed by `meshsim validate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space_delimited_claims: Vec<String>,
    /// How long istiod or Envoy waits for a remote JWKS; meshsim reads JWKS from files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `outputClaimToHeaders` entry: the verified token's `claim` is copied into `header`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthentication {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PeerAuthenticationSpec,
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthenticationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MtlsSettings>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<String, MtlsSettings>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MtlsSettings {
    #[serde(default)]
    pub mode: MtlsMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MtlsMode {
    #[default]
    Unset,
    Disable,
    Permissive,
    Strict,
}

// ---------------------------------------------------------------------------------------------
// Reading files

/// An object of a kind meshsim reads.
#[derive(Debug, Clone)]
pub enum Object {
    Namespace(Namespace),
    Gateway(Gateway),
    AuthorizationPolicy(AuthorizationPolicy),
    RequestAuthentication(RequestAuthentication),
    PeerAuthentication(PeerAuthentication),
    NetworkPolicy(crate::netpol::NetworkPolicy),
    CiliumNetworkPolicy(crate::netpol::CiliumNetworkPolicy),
    DestinationRule(Box<crate::destrule::DestinationRule>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::Gateway(_) => "Gateway",
            Object::AuthorizationPolicy(_) => "AuthorizationPolicy",
            Object::RequestAuthentication(_) => "RequestAuthentication",
            Object::PeerAuthentication(_) => "PeerAuthentication",
            Object::NetworkPolicy(_) => "NetworkPolicy",
            Object::CiliumNetworkPolicy(_) => "CiliumNetworkPolicy",
            Object::DestinationRule(_) => "DestinationRule",
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
            Object::AuthorizationPolicy(o) => &o.metadata,
            Object::RequestAuthentication(o) => &o.metadata,
            Object::PeerAuthentication(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
            Object::CiliumNetworkPolicy(o) => &o.metadata,
            Object::DestinationRule(o) => &o.metadata,
        }
    }

    /// A NetworkPolicy or CiliumNetworkPolicy in the form the CNI enforces; `None` for other
    /// kinds, and for a policy with errors (which `validate` reports).
    pub fn netpol(&self) -> Option<crate::netpol::Netpol> {
        match self {
            Object::NetworkPolicy(p) => crate::netpol::Netpol::from_k8s(p).ok(),
            Object::CiliumNetworkPolicy(p) => crate::netpol::Netpol::from_cilium(p).ok(),
            _ => None,
        }
    }

    /// The object as JSON, for the resolved scenario written into results.
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Object::Namespace(o) => serde_json::to_value(o),
            Object::Gateway(o) => serde_json::to_value(o),
            Object::AuthorizationPolicy(o) => serde_json::to_value(o),
            Object::RequestAuthentication(o) => serde_json::to_value(o),
            Object::PeerAuthentication(o) => serde_json::to_value(o),
            Object::NetworkPolicy(o) => serde_json::to_value(o),
            Object::CiliumNetworkPolicy(o) => serde_json::to_value(o),
            Object::DestinationRule(o) => serde_json::to_value(o),
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}

/// An object read from a manifest file, and where.
#[derive(Debug, Clone)]
pub struct Located {
    pub object: Object,
    pub origin: Origin,
}

/// A manifest object of a kind meshsim does not model: reported, not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ignored {
    pub file: PathBuf,
    pub line: usize,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} `{}` ({}) is ignored: meshsim does not model this kind",
            self.file.display(),
            self.line,
            self.kind,
            self.name,
            self.api_version
        )
    }
}

/// Everything one manifest file holds.
#[derive(Debug, Clone, Default)]
pub struct ManifestFile {
    pub objects: Vec<Located>,
    pub ignored: Vec<Ignored>,
}

const SECURITY_VERSIONS: &[&str] = &["security.istio.io/v1", "security.istio.io/v1beta1"];
const GATEWAY_VERSIONS: &[&str] = &[
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
];

/// Reads every document of a manifest file. Errors carry file, line, column and field path;
/// all of a file's errors are returned, not just the first.
pub fn parse_file(file: &Path, text: &str) -> (ManifestFile, Vec<Diagnostic>) {
    let mut out = ManifestFile::default();
    let mut errors = Vec::new();
    for doc in split_documents(text) {
        let index = Arc::new(LocIndex::build(doc.text, doc.line_offset));
        let origin = Origin {
            file: file.to_path_buf(),
            index: index.clone(),
        };
        match parse_object(file, &doc, &index, &origin) {
            Ok(Parsed::Object(object)) => {
                errors.extend(check_object(&object, &origin));
                out.objects.push(Located {
                    object: *object,
                    origin,
                });
            }
            Ok(Parsed::Ignored(i)) => out.ignored.push(i),
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

enum Parsed {
    Object(Box<Object>),
    Ignored(Ignored),
}

fn parse_object(
    file: &Path,
    doc: &Document<'_>,
    index: &LocIndex,
    origin: &Origin,
) -> Result<Parsed, Diagnostic> {
    let tm: TypeMeta = parse_doc(file, doc, index)?;
    let Some(kind) = tm.kind else {
        return Err(origin.at(
            "kind",
            "missing field `kind`; every manifest object needs one",
        ));
    };
    let Some(api_version) = tm.api_version else {
        return Err(origin.at(
            "apiVersion",
            "missing field `apiVersion`; every manifest object needs one",
        ));
    };
    let check_version = |allowed: &[&str]| -> Result<(), Diagnostic> {
        if allowed.contains(&api_version.as_str()) {
            Ok(())
        } else {
            Err(origin.at(
                "apiVersion",
                format!(
                    "`{api_version}` is not an apiVersion of {kind}; use {}",
                    allowed.join(" or ")
                ),
            ))
        }
    };
    let object = match kind.as_str() {
        "Namespace" => {
            check_version(&["v1"])?;
            Object::Namespace(parse_doc(file, doc, index)?)
        }
        "Gateway" => {
            check_version(GATEWAY_VERSIONS)?;
            let g: Gateway = parse_doc(file, doc, index)?;
            if g.spec.gateway_class_name != WAYPOINT_CLASS {
                // Ingress and egress gateways are outside meshsim's model: say so.
                return Ok(Parsed::Ignored(Ignored {
                    file: file.to_path_buf(),
                    line: origin.line(),
                    api_version,
                    kind: format!("Gateway of class {}", g.spec.gateway_class_name),
                    name: format!("{}/{}", g.metadata.ns(), g.metadata.name),
                }));
            }
            Object::Gateway(g)
        }
        "AuthorizationPolicy" => {
            check_version(SECURITY_VERSIONS)?;
            Object::AuthorizationPolicy(parse_doc(file, doc, index)?)
        }
        "RequestAuthentication" => {
            check_version(SECURITY_VERSIONS)?;
            Object::RequestAuthentication(parse_doc(file, doc, index)?)
        }
        "PeerAuthentication" => {
            check_version(SECURITY_VERSIONS)?;
            Object::PeerAuthentication(parse_doc(file, doc, index)?)
        }
        "NetworkPolicy" => {
            check_version(&["networking.k8s.io/v1"])?;
            Object::NetworkPolicy(parse_doc(file, doc, index)?)
        }
        "CiliumNetworkPolicy" => {
            check_version(&["cilium.io/v2"])?;
            Object::CiliumNetworkPolicy(parse_doc(file, doc, index)?)
        }
        "DestinationRule" => {
            check_version(crate::destrule::API_VERSIONS)?;
            Object::DestinationRule(Box::new(parse_doc(file, doc, index)?))
        }
        _ => {
            let meta = tm.metadata.unwrap_or(LooseMeta {
                name: None,
                namespace: None,
            });
            let name = match (meta.namespace, meta.name) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                (None, Some(n)) => n,
                _ => "(unnamed)".to_string(),
            };
            return Ok(Parsed::Ignored(Ignored {
                file: file.to_path_buf(),
                line: origin.line(),
                api_version,
                kind,
                name,
            }));
        }
    };
    Ok(Parsed::Object(Box::new(object)))
}

/// Checks one object on its own (references to other objects are checked by the scenario's
/// validation, which knows them all).
fn check_object(object: &Object, origin: &Origin) -> Vec<Diagnostic> {
    let mut errs = Vec::new();
    match object {
        Object::Namespace(_) => {}
        Object::Gateway(g) => {
            if let Some(v) = g.metadata.labels.get(WAYPOINT_FOR)
                && !["service", "workload", "all", "none"].contains(&v.as_str())
            {
                errs.push(origin.at(
                    &format!("metadata.labels[{WAYPOINT_FOR:?}]"),
                    format!("`{v}` is not a waypoint type; use service, workload, all or none"),
                ));
            }
            if g.spec.gateway_class_name == WAYPOINT_CLASS
                && let Err(e) = proxy_config(g)
            {
                errs.push(origin.at(&format!("metadata.annotations[{PROXY_CONFIG:?}]"), e));
            }
        }
        Object::AuthorizationPolicy(p) => {
            let s = &p.spec;
            check_selection(
                &mut errs,
                origin,
                s.selector.is_some(),
                s.target_ref.is_some(),
                &s.target_refs,
            );
            check_authz(&mut errs, origin, s);
        }
        Object::RequestAuthentication(ra) => {
            let s = &ra.spec;
            check_selection(
                &mut errs,
                origin,
                s.selector.is_some(),
                s.target_ref.is_some(),
                &s.target_refs,
            );
            for (i, rule) in s.jwt_rules.iter().enumerate() {
                if rule.jwks.is_some() && rule.jwks_uri.is_some() {
                    errs.push(origin.at(
                        &format!("spec.jwtRules[{i}].jwks"),
                        "set either `jwks` or `jwksUri`, not both",
                    ));
                }
                if rule.jwks.is_none() && rule.jwks_uri.is_none() {
                    errs.push(origin.at(
                        &format!("spec.jwtRules[{i}]"),
                        "needs `jwks` (inline) or `jwksUri` (mapped to a local file by the scenario's `jwks:`)",
                    ));
                }
            }
        }
        Object::PeerAuthentication(_) => {}
        Object::NetworkPolicy(p) => {
            if let Err(e) = crate::netpol::Netpol::from_k8s(p) {
                errs.extend(e.into_iter().map(|(path, m)| origin.at(&path, m)));
            }
        }
        Object::CiliumNetworkPolicy(p) => {
            if let Err(e) = crate::netpol::Netpol::from_cilium(p) {
                errs.extend(e.into_iter().map(|(path, m)| origin.at(&path, m)));
            }
        }
        Object::DestinationRule(r) => {
            errs.extend(
                crate::destrule::check(r)
                    .into_iter()
                    .map(|(path, m)| origin.at(&path, m)),
            );
        }
    }
    errs
}

/// Istio's admission checks of an AuthorizationPolicy spec that decide whether it is accepted
/// (`pkg/config/validation/validation.go`, `ValidateAuthorizationPolicy`), and the `when` keys.
fn check_authz(errs: &mut Vec<Diagnostic>, origin: &Origin, s: &AuthorizationPolicySpec) {
    let custom = s.action == Action::Custom;
    if custom && s.rules.is_some() && s.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
        errs.push(origin.at("spec.provider", "a CUSTOM policy needs `provider.name`"));
    }
    if !custom && s.provider.is_some() {
        errs.push(origin.at_key(
            "spec.provider",
            "`provider` is only for action CUSTOM (Istio rejects the policy)",
        ));
    }
    if matches!(s.action, Action::Deny | Action::Custom) && s.rules.is_none() {
        errs.push(origin.at_key(
            "spec.action",
            "a DENY or CUSTOM policy without `rules` never triggers and Istio rejects it; add `rules: [{}]` to match every request",
        ));
    }
    for (r, rule) in s.rules.iter().flatten().enumerate() {
        for (f, from) in rule.from.iter().enumerate() {
            check_source(
                errs,
                origin,
                &format!("spec.rules[{r}].from[{f}].source"),
                &from.source,
                custom,
            );
        }
        for (t, to) in rule.to.iter().enumerate() {
            check_operation(
                errs,
                origin,
                &format!("spec.rules[{r}].to[{t}].operation"),
                &to.operation,
            );
        }
        for (c, cond) in rule.when.iter().enumerate() {
            if let Err(e) = check_condition(cond, custom) {
                errs.push(origin.at(&format!("spec.rules[{r}].when[{c}].key"), e));
            }
        }
    }
}

fn check_source(errs: &mut Vec<Diagnostic>, origin: &Origin, at: &str, s: &Source, custom: bool) {
    let identity = [
        &s.principals,
        &s.not_principals,
        &s.namespaces,
        &s.not_namespaces,
    ];
    let sas = [&s.service_accounts, &s.not_service_accounts];
    let has_identity = identity.iter().any(|v| !v.is_empty());
    let has_sa = sas.iter().any(|v| !v.is_empty());
    if has_identity && has_sa {
        errs.push(origin.at(at, "set `serviceAccounts` without `namespaces` or `principals` (Istio rejects the combination)"));
    }
    if custom
        && (has_identity
            || has_sa
            || !s.request_principals.is_empty()
            || !s.not_request_principals.is_empty())
    {
        errs.push(origin.at(at, "CUSTOM rules cannot match principals, namespaces, service accounts or request principals"));
    }
    let all = [
        &s.principals,
        &s.not_principals,
        &s.request_principals,
        &s.not_request_principals,
        &s.namespaces,
        &s.not_namespaces,
        &s.ip_blocks,
        &s.not_ip_blocks,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
        &s.service_accounts,
        &s.not_service_accounts,
    ];
    if all.iter().all(|v| v.is_empty()) {
        errs.push(origin.at(at, "`source` must not be empty"));
    }
    if all.iter().any(|v| v.iter().any(String::is_empty)) {
        errs.push(origin.at(at, "empty values are not allowed"));
    }
    for v in sas.iter().flat_map(|v| v.iter()) {
        let ok = !v.contains('*')
            && v.len() <= 320
            && match v.split_once('/') {
                Some((ns, sa)) => !ns.is_empty() && !sa.is_empty() && !sa.contains('/'),
                None => !v.is_empty(),
            };
        if !ok {
            errs.push(origin.at(
                at,
                format!(
                    "service account `{v}` must be `name` or `namespace/name`, without wildcards"
                ),
            ));
        }
    }
    let ips = [
        &s.ip_blocks,
        &s.not_ip_blocks,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
    ];
    for v in ips.iter().flat_map(|v| v.iter()) {
        if !valid_ip_or_cidr(v) {
            errs.push(origin.at(at, format!("`{v}` is not an IP address or CIDR range")));
        }
    }
}

fn valid_ip_or_cidr(v: &str) -> bool {
    match v.split_once('/') {
        Some((ip, len)) => match (ip.parse::<std::net::IpAddr>(), len.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(l)) => l <= 32,
            (Ok(std::net::IpAddr::V6(_)), Ok(l)) => l <= 128,
            _ => false,
        },
        None => v.parse::<std::net::IpAddr>().is_ok(),
    }
}

fn check_operation(errs: &mut Vec<Diagnostic>, origin: &Origin, at: &str, o: &Operation) {
    let strs = [
        &o.hosts,
        &o.not_hosts,
        &o.methods,
        &o.not_methods,
        &o.paths,
        &o.not_paths,
    ];
    if strs.iter().all(|v| v.is_empty()) && o.ports.is_empty() && o.not_ports.is_empty() {
        errs.push(origin.at(at, "`operation` must not be empty"));
    }
    if strs.iter().any(|v| v.iter().any(String::is_empty)) {
        errs.push(origin.at(at, "empty values are not allowed"));
    }
    for p in o.paths.iter().chain(&o.not_paths) {
        if let Err(e) = check_path_template(p) {
            errs.push(origin.at(at, format!("invalid path {e}")));
        }
    }
}

/// `pkg/config/security/security.go`, `CheckValidPathTemplate`: `{*}` and `{**}` only as whole
/// segments, `{**}` last, literal segments around them.
pub fn check_path_template(path: &str) -> Result<(), String> {
    let templ = path.contains("{*}") || path.contains("{**}");
    let literal = |seg: &str| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@=".contains(c))
    };
    let mut any_seen = false;
    for seg in path.trim_matches('/').split('/') {
        match seg {
            "{*}" | "{**}" if any_seen => {
                return Err(format!("`{path}`: {{**}} must be the last operator"));
            }
            "{*}" => continue,
            "{**}" => {
                any_seen = true;
                continue;
            }
            _ => {}
        }
        if seg.contains(['{', '}']) {
            return Err(format!(
                "`{path}`: `{{` or `}}` outside a whole-segment {{*}} or {{**}}"
            ));
        }
        if templ && !literal(seg) {
            return Err(format!(
                "`{path}`: segment `{seg}` is not a valid literal next to a template"
            ));
        }
    }
    Ok(())
}

/// A `when` condition as `ValidateAttribute` reads it, limited to the keys meshsim evaluates.
fn check_condition(c: &Condition, custom: bool) -> Result<(), String> {
    let k = c.key.as_str();
    if c.values.is_empty() && c.not_values.is_empty() {
        return Err(format!(
            "at least one of `values` or `notValues` must be set for key {k}"
        ));
    }
    if c.values.iter().chain(&c.not_values).any(String::is_empty) {
        return Err(format!("empty values are not allowed for key {k}"));
    }
    let map_key = |prefix: &str| {
        k.strip_prefix(prefix)
            .is_some_and(|rest| rest.len() > 2 && rest.starts_with('[') && rest.ends_with(']'))
    };
    let all = || c.values.iter().chain(&c.not_values);
    match k {
        "source.ip" | "remote.ip" | "destination.ip" if !all().all(|v| valid_ip_or_cidr(v)) => {
            Err(format!("`{k}` values must be IP addresses or CIDR ranges"))
        }
        "destination.port" if !all().all(|v| v.parse::<u16>().is_ok()) => {
            Err("`destination.port` values must be ports 0..65535".to_string())
        }
        "source.namespace" | "source.serviceAccount" | "source.principal" if custom => {
            Err(format!("`{k}` is not supported with action CUSTOM"))
        }
        _ if custom && k.starts_with("request.auth.") => {
            Err(format!("`{k}` is not supported with action CUSTOM"))
        }
        "source.ip"
        | "remote.ip"
        | "destination.ip"
        | "destination.port"
        | "source.namespace"
        | "source.serviceAccount"
        | "source.principal"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(()),
        _ if k.starts_with("request.headers") || k.starts_with("request.auth.claims") => {
            if map_key("request.headers") || map_key("request.auth.claims") {
                Ok(())
            } else {
                Err(format!(
                    "bad key `{k}`: write it as {}[name]",
                    k.split('[').next().unwrap_or(k)
                ))
            }
        }
        "destination.namespace" => {
            Err("`destination.namespace` is replaced by the policy's metadata.namespace".into())
        }
        _ if k.starts_with("destination.labels") => {
            Err(format!("`{k}` is replaced by the workload selector"))
        }
        _ if k.starts_with("experimental.") || k == "source.trustDomain" => Err(format!(
            "condition key `{k}` is not modeled; meshsim evaluates {}",
            CONDITION_KEYS.join(", ")
        )),
        _ => Err(format!(
            "unknown attribute `{k}`; Istio's keys are {}",
            CONDITION_KEYS.join(", ")
        )),
    }
}

fn check_selection(
    errs: &mut Vec<Diagnostic>,
    origin: &Origin,
    selector: bool,
    target_ref: bool,
    target_refs: &[TargetRef],
) {
    if selector && (target_ref || !target_refs.is_empty()) {
        errs.push(origin.at_key(
            "spec.selector",
            "set either `selector` or `targetRefs`, not both (Istio rejects the policy)",
        ));
    }
    for (i, t) in target_refs.iter().enumerate() {
        // pkg/config/validation/validation.go, allowedTargetRefs (GatewayClass: Istio 1.26+).
        let ok = matches!(
            (t.kind.as_str(), t.group.as_str()),
            ("Service", "" | "core")
                | ("ServiceEntry", "networking.istio.io")
                | ("Gateway" | "GatewayClass", "gateway.networking.k8s.io")
        );
        if !ok {
            errs.push(origin.at(
                &format!("spec.targetRefs[{i}].kind"),
                format!(
                    "targetRef kind `{}` group `{}` is not allowed; use Service (group \"\"), ServiceEntry (networking.istio.io), Gateway or GatewayClass (gateway.networking.k8s.io)",
                    t.kind, t.group
                ),
            ));
        }
    }
}

pub const WAYPOINT_CLASS: &str = "istio-waypoint";
pub const WAYPOINT_FOR: &str = "istio.io/waypoint-for";
pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
pub const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";
pub const FOR_SERVICE_ACCOUNT: &str = "istio.io/for-service-account";
pub const PROXY_CONFIG: &str = "proxy.istio.io/config";
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
pub const ISTIO_INJECTION: &str = "istio-injection";
pub use crate::meta::ROOT_NAMESPACE;

/// What a waypoint `Gateway` serves (default `service`, as istiod assumes).
pub fn waypoint_for(g: &Gateway) -> WaypointFor {
    match g.metadata.labels.get(WAYPOINT_FOR).map(String::as_str) {
        Some("workload") => WaypointFor::Workload,
        Some("all") => WaypointFor::All,
        Some("none") => WaypointFor::None,
        _ => WaypointFor::Service,
    }
}

/// The `proxy.istio.io/config` annotation of a gateway, read.
pub fn proxy_config(g: &Gateway) -> Result<ProxyConfig, String> {
    match g.metadata.annotations.get(PROXY_CONFIG) {
        None => Ok(ProxyConfig::default()),
        Some(text) => serde_saphyr::from_str::<ProxyConfig>(text).map_err(|e| {
            use serde_saphyr::MessageFormatter;
            let inner = e.without_snippet();
            let msg = serde_saphyr::DefaultMessageFormatter.format_message(inner);
            match inner.location() {
                Some(l) if l.line() > 0 => format!(
                    "in the proxy config (its line {}, column {}): {msg}",
                    l.line(),
                    l.column()
                ),
                _ => format!("in the proxy config: {msg}"),
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(parse_cpu("200m").unwrap(), 200);
        assert_eq!(parse_cpu("1").unwrap(), 1000);
        assert_eq!(parse_cpu("0.5").unwrap(), 500);
        assert!(parse_cpu("fast").is_err());
        assert!(parse_cpu("0").is_err());
    }

    #[test]
    fn unknown_kinds_are_reported_not_dropped() {
        let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\n  namespace: prod\nspec: {}\n";
        let (m, errs) = parse_file(Path::new("m.yaml"), text);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(m.ignored.len(), 1);
        let s = m.ignored[0].to_string();
        assert!(s.contains("VirtualService `prod/vs`"), "{s}");
        assert!(s.starts_with("m.yaml:1:"), "{s}");
    }

    fn authz_errors(spec: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: prod}}\nspec:\n{spec}"
        );
        let (_, errs) = parse_file(Path::new("p.yaml"), &text);
        errs.iter().map(|e| e.to_string()).collect()
    }

    // pkg/config/validation/validation.go, ValidateAuthorizationPolicy.
    #[test]
    fn authz_admission_rules() {
        assert!(authz_errors("  action: AUDIT\n  rules: [{}]\n").is_empty());
        assert!(
            authz_errors("  action: CUSTOM\n  provider: {name: opa}\n  rules: [{}]\n").is_empty()
        );
        assert_eq!(authz_errors("  action: CUSTOM\n  rules: [{}]\n").len(), 1);
        assert_eq!(authz_errors("  action: DENY\n").len(), 1);
        assert_eq!(
            authz_errors("  provider: {name: opa}\n  rules: [{}]\n").len(),
            1
        );
        let mixed = "  rules:\n  - from: [{source: {serviceAccounts: [a], namespaces: [b]}}]\n";
        assert_eq!(authz_errors(mixed).len(), 1);
        assert_eq!(
            authz_errors("  rules:\n  - from: [{source: {serviceAccounts: [\"a/*\"]}}]\n").len(),
            1
        );
        assert_eq!(
            authz_errors("  rules:\n  - from: [{source: {}}]\n").len(),
            1
        );
        let custom_ns = "  action: CUSTOM\n  provider: {name: x}\n  rules:\n  - from: [{source: {namespaces: [a]}}]\n";
        assert_eq!(authz_errors(custom_ns).len(), 1);
    }

    // pkg/config/security/security.go, ValidateAttribute and CheckValidPathTemplate.
    #[test]
    fn authz_keys_and_paths() {
        let when = |k: &str| {
            authz_errors(&format!(
                "  rules:\n  - when: [{{key: \"{k}\", values: [\"1.2.3.4\"]}}]\n"
            ))
        };
        for k in [
            "remote.ip",
            "destination.ip",
            "connection.sni",
            "request.auth.presenter",
            "request.auth.claims[a][b]",
            "source.serviceAccount",
        ] {
            assert!(when(k).is_empty(), "{k}: {:?}", when(k));
        }
        for k in [
            "request.auth.issuer",
            "request.headers",
            "destination.namespace",
            "experimental.envoy.filters.x[y]",
        ] {
            assert_eq!(when(k).len(), 1, "{k}");
        }
        assert!(check_path_template("/foo/{*}/bar/{**}").is_ok());
        assert!(check_path_template("/foo/{**}/{*}").is_err());
        assert!(check_path_template("/foo{*}").is_err());
        assert!(check_path_template("/foo/{*}/b*r").is_err());
        assert!(check_path_template("/plain/*").is_ok());
        let tr = "  targetRefs: [{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}]\n";
        assert!(authz_errors(tr).is_empty());
        let se = "  targetRefs: [{kind: ServiceEntry, group: networking.istio.io, name: e}]\n";
        assert!(authz_errors(se).is_empty());
    }
}
