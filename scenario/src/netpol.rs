//! Kubernetes `NetworkPolicy` and the L3/L4 part of Cilium's `CiliumNetworkPolicy`, read as
//! written and brought to one form ([`Netpol`]) that the simulator enforces as a CNI does.
//!
//! The two kinds differ where it matters: in Kubernetes an ingress rule `{}` admits everyone,
//! in Cilium it admits no one (the endpoint is put in default deny); a Cilium rule with only
//! `toPorts` admits any peer on those ports; a Cilium endpoint selector stays in the policy's
//! namespace unless it names one with `k8s:io.kubernetes.pod.namespace`.
//! (https://kubernetes.io/docs/concepts/services-networking/network-policies/,
//! https://docs.cilium.io/en/stable/security/policy/language/)

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// The label every namespace carries with its own name (Kubernetes ≥ 1.21), which a
/// namespace selector can match on.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

// ---------------------------------------------------------------------------------------------
// Kubernetes NetworkPolicy (networking.k8s.io/v1)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: NetworkPolicySpec,
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    pub pod_selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<K8sIngressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<K8sEgressRule>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sIngressRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<K8sPeer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<K8sPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sEgressRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<K8sPeer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<K8sPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sPeer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpBlock {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
}

/// A port as manifests write it: a number, or a string (a number in quotes, or a named port).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortValue {
    Number(u16),
    Text(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelExpression>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelExpression {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// CiliumNetworkPolicy (cilium.io/v2), L3/L4

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumNetworkPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: CiliumSpec,
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumSpec {
    pub endpoint_selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<CiliumRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<CiliumRule>>,
}

/// One Cilium ingress or egress rule: the `from*` fields in ingress, the `to*` ones in egress
/// (read with either spelling; [`Netpol::from_cilium`] says which belongs where).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumRule {
    #[serde(
        default,
        alias = "toEndpoints",
        skip_serializing_if = "Option::is_none"
    )]
    pub from_endpoints: Option<Vec<LabelSelector>>,
    #[serde(
        default,
        rename = "fromCIDR",
        alias = "toCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub from_cidr: Option<Vec<String>>,
    #[serde(
        default,
        rename = "fromCIDRSet",
        alias = "toCIDRSet",
        skip_serializing_if = "Option::is_none"
    )]
    pub from_cidr_set: Option<Vec<CiliumCidrRule>>,
    #[serde(default, alias = "toEntities", skip_serializing_if = "Option::is_none")]
    pub from_entities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_ports: Vec<CiliumPortRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumCidrRule {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumPortRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<CiliumPort>,
    /// L7 rules (HTTP, Kafka, DNS): read, not enforced; `validate` warns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumPort {
    pub port: PortValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// One form for both

/// Which API a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NetpolKind {
    NetworkPolicy,
    CiliumNetworkPolicy,
}

/// A network policy as the CNI enforces it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Netpol {
    pub kind: NetpolKind,
    pub namespace: String,
    pub name: String,
    /// Pods of `namespace` it applies to.
    pub selector: LabelSelector,
    /// `None`: the policy does not isolate this direction. `Some`: it does, and admits what
    /// any of the rules admits (none: nothing).
    pub ingress: Option<Vec<NpRule>>,
    pub egress: Option<Vec<NpRule>>,
}

/// What one rule admits: traffic from (ingress) or to (egress) any of `peers`, on any of
/// `ports`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NpRule {
    /// `None`: any peer.
    pub peers: Option<Vec<Peer>>,
    /// Empty: every port and protocol.
    pub ports: Vec<PortRange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Peer {
    /// Pods matching `pods` in the namespaces matching `namespaces` (`None`: the policy's
    /// own namespace).
    Pods {
        namespaces: Option<LabelSelector>,
        pods: LabelSelector,
    },
    /// Addresses in `cidr` but none of `except`.
    Cidr {
        cidr: (Ipv4Addr, u8),
        except: Vec<(Ipv4Addr, u8)>,
    },
}

/// `protocol` ports `first..=last`; `first` `None`: every port of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortRange {
    /// `tcp`, `udp` or `sctp` (lower case, as nftables names them).
    pub protocol: String,
    pub first: Option<u16>,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, protocol: &str, port: u16) -> bool {
        self.protocol == protocol && self.first.is_none_or(|f| (f..=self.last).contains(&port))
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.protocol.to_uppercase();
        match self.first {
            None => write!(f, "{p} any port"),
            Some(a) if a == self.last => write!(f, "{p} {a}"),
            Some(a) => write!(f, "{p} {a}-{}", self.last),
        }
    }
}

/// A problem with a policy: the field and what is wrong.
pub type FieldError = (String, String);

impl LabelSelector {
    /// Whether `labels` satisfy every `matchLabels` entry and every expression.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let v = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => v.is_some_and(|v| e.values.contains(v)),
                    "NotIn" => v.is_none_or(|v| !e.values.contains(v)),
                    "Exists" => v.is_some(),
                    "DoesNotExist" => v.is_none(),
                    _ => false,
                }
            })
    }

    fn check(&self, at: &str, errs: &mut Vec<FieldError>) {
        for (i, e) in self.match_expressions.iter().enumerate() {
            let at = format!("{at}.matchExpressions[{i}]");
            match e.operator.as_str() {
                "In" | "NotIn" if e.values.is_empty() => errs.push((
                    format!("{at}.values"),
                    format!("operator {} needs at least one value", e.operator),
                )),
                "Exists" | "DoesNotExist" if !e.values.is_empty() => errs.push((
                    format!("{at}.values"),
                    format!("operator {} takes no values", e.operator),
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                o => errs.push((
                    format!("{at}.operator"),
                    format!("`{o}` is not an operator; use In, NotIn, Exists or DoesNotExist"),
                )),
            }
        }
    }
}

fn cidr(v: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, len) = v.split_once('/').unwrap_or((v, "32"));
    match (ip.parse::<Ipv4Addr>(), len.parse::<u8>()) {
        (Ok(ip), Ok(len)) if len <= 32 => Ok((ip, len)),
        _ => Err(format!(
            "`{v}` is not an IPv4 CIDR (meshsim's pods are IPv4; e.g. 10.1.0.0/16)"
        )),
    }
}

fn protocol(p: Option<&str>, any_ok: bool) -> Result<Vec<String>, String> {
    match p.unwrap_or(if any_ok { "ANY" } else { "TCP" }) {
        "TCP" => Ok(vec!["tcp".into()]),
        "UDP" => Ok(vec!["udp".into()]),
        "SCTP" => Ok(vec!["sctp".into()]),
        "ANY" if any_ok => Ok(vec!["tcp".into(), "udp".into(), "sctp".into()]),
        other => Err(format!(
            "`{other}` is not a protocol here; use TCP, UDP or SCTP{}",
            if any_ok { " (or ANY)" } else { "" }
        )),
    }
}

fn port_number(v: &PortValue) -> Result<u16, String> {
    match v {
        PortValue::Number(0) => Err("port 0 is not a port".into()),
        PortValue::Number(n) => Ok(*n),
        PortValue::Text(s) => match s.parse::<u16>() {
            Ok(0) => Err("port 0 is not a port".into()),
            Ok(n) => Ok(n),
            Err(_) => Err(format!(
                "named port `{s}`: meshsim's workloads declare no port names; write the number"
            )),
        },
    }
}

fn range(
    first: Option<u16>,
    end: Option<u16>,
    protocols: Vec<String>,
) -> Result<Vec<PortRange>, String> {
    let last = match (first, end) {
        (Some(a), Some(b)) if b < a => {
            return Err(format!("endPort {b} is below port {a}"));
        }
        (None, Some(_)) => return Err("endPort needs a port".into()),
        (Some(a), b) => b.unwrap_or(a),
        (None, None) => u16::MAX,
    };
    Ok(protocols
        .into_iter()
        .map(|protocol| PortRange {
            protocol,
            first,
            last,
        })
        .collect())
}

impl Netpol {
    /// A Kubernetes NetworkPolicy, or every problem in it, each with its field.
    pub fn from_k8s(p: &NetworkPolicy) -> Result<Netpol, Vec<FieldError>> {
        let mut errs = Vec::new();
        let s = &p.spec;
        s.pod_selector.check("spec.podSelector", &mut errs);
        // policyTypes defaults to Ingress, plus Egress when there are egress rules.
        let types: Vec<String> = match &s.policy_types {
            Some(t) => t.clone(),
            None => {
                let mut t = vec!["Ingress".to_string()];
                if s.egress.is_some() {
                    t.push("Egress".into());
                }
                t
            }
        };
        for (i, t) in types.iter().enumerate() {
            if t != "Ingress" && t != "Egress" {
                errs.push((
                    format!("spec.policyTypes[{i}]"),
                    format!("`{t}` is not a policy type; use Ingress or Egress"),
                ));
            }
        }
        let rules = |dir: &str, list: Vec<(&Vec<K8sPeer>, &Vec<K8sPort>)>, errs: &mut Vec<_>| {
            list.into_iter()
                .enumerate()
                .map(|(r, (peers, ports))| {
                    let at = format!("spec.{dir}[{r}]");
                    k8s_rule(&at, dir, peers, ports, errs)
                })
                .collect::<Vec<NpRule>>()
        };
        let ingress = types.iter().any(|t| t == "Ingress").then(|| {
            let list = s.ingress.iter().flatten().map(|r| (&r.from, &r.ports));
            rules("ingress", list.collect(), &mut errs)
        });
        let egress = types.iter().any(|t| t == "Egress").then(|| {
            let list = s.egress.iter().flatten().map(|r| (&r.to, &r.ports));
            rules("egress", list.collect(), &mut errs)
        });
        if errs.is_empty() {
            Ok(Netpol {
                kind: NetpolKind::NetworkPolicy,
                namespace: p.metadata.ns().to_string(),
                name: p.metadata.name.clone(),
                selector: s.pod_selector.clone(),
                ingress,
                egress,
            })
        } else {
            Err(errs)
        }
    }

    /// A CiliumNetworkPolicy's L3/L4 rules, or every problem in it, each with its field.
    pub fn from_cilium(p: &CiliumNetworkPolicy) -> Result<Netpol, Vec<FieldError>> {
        let mut errs = Vec::new();
        let s = &p.spec;
        let ns = p.metadata.ns().to_string();
        let selector = cilium_selector(&s.endpoint_selector, "spec.endpointSelector", &mut errs);
        if selector.1.is_some() {
            errs.push((
                "spec.endpointSelector".into(),
                "a namespaced policy selects endpoints of its own namespace; drop the namespace label".into(),
            ));
        }
        let mut rules = |dir: &str, list: &Option<Vec<CiliumRule>>| {
            list.as_ref().map(|v| {
                v.iter()
                    .enumerate()
                    .map(|(r, rule)| cilium_rule(&format!("spec.{dir}[{r}]"), rule, &mut errs))
                    .collect::<Vec<_>>()
            })
        };
        let ingress = rules("ingress", &s.ingress);
        let egress = rules("egress", &s.egress);
        if errs.is_empty() {
            Ok(Netpol {
                kind: NetpolKind::CiliumNetworkPolicy,
                namespace: ns,
                name: p.metadata.name.clone(),
                selector: selector.0,
                ingress,
                egress,
            })
        } else {
            Err(errs)
        }
    }

    /// `kind namespace/name`, as the report names it.
    pub fn id(&self) -> String {
        format!("{:?} {}/{}", self.kind, self.namespace, self.name)
    }

    /// Ports a direction admits on any rule, as text (`TCP 8080`), or `None` when some rule
    /// admits every port.
    pub fn ports(rules: &[NpRule]) -> Option<Vec<String>> {
        if rules.iter().any(|r| r.ports.is_empty()) {
            return None;
        }
        let mut v: Vec<String> = rules
            .iter()
            .flat_map(|r| r.ports.iter().map(ToString::to_string))
            .collect();
        v.dedup();
        Some(v)
    }
}

fn k8s_rule(
    at: &str,
    dir: &str,
    peers: &[K8sPeer],
    ports: &[K8sPort],
    errs: &mut Vec<FieldError>,
) -> NpRule {
    let field = if dir == "ingress" { "from" } else { "to" };
    let mut out = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        let at = format!("{at}.{field}[{i}]");
        match (&peer.pod_selector, &peer.namespace_selector, &peer.ip_block) {
            (None, None, Some(b)) => {
                let c = cidr(&b.cidr).map_err(|e| errs.push((format!("{at}.ipBlock.cidr"), e)));
                let except: Vec<_> = b
                    .except
                    .iter()
                    .enumerate()
                    .filter_map(|(k, e)| {
                        cidr(e)
                            .map_err(|m| errs.push((format!("{at}.ipBlock.except[{k}]"), m)))
                            .ok()
                    })
                    .collect();
                if let Ok(cidr) = c {
                    out.push(Peer::Cidr { cidr, except });
                }
            }
            (_, _, Some(_)) => errs.push((
                at,
                "ipBlock cannot be combined with podSelector or namespaceSelector".into(),
            )),
            (None, None, None) => errs.push((
                at,
                "a peer needs podSelector, namespaceSelector or ipBlock".into(),
            )),
            (pods, namespaces, None) => {
                if let Some(p) = pods {
                    p.check(&format!("{at}.podSelector"), errs);
                }
                if let Some(n) = namespaces {
                    n.check(&format!("{at}.namespaceSelector"), errs);
                }
                out.push(Peer::Pods {
                    namespaces: namespaces.clone(),
                    pods: pods.clone().unwrap_or_default(),
                });
            }
        }
    }
    let mut ranges = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("{at}.ports[{i}]");
        let r = protocol(p.protocol.as_deref(), false)
            .map_err(|e| (format!("{at}.protocol"), e))
            .and_then(|protos| {
                let first = p
                    .port
                    .as_ref()
                    .map(port_number)
                    .transpose()
                    .map_err(|e| (format!("{at}.port"), e))?;
                range(first, p.end_port, protos).map_err(|e| (format!("{at}.endPort"), e))
            });
        match r {
            Ok(r) => ranges.extend(r),
            Err(e) => errs.push(e),
        }
    }
    NpRule {
        // An empty `from`/`to` admits every peer.
        peers: (!peers.is_empty()).then_some(out),
        ports: ranges,
    }
}

/// A Cilium endpoint selector split into the pod part and the namespace it names, if any.
/// Cilium writes labels with a source prefix (`k8s:`, `any:`); the namespace is
/// `k8s:io.kubernetes.pod.namespace`, namespace labels `io.cilium.k8s.namespace.labels.<key>`.
fn cilium_selector(
    s: &LabelSelector,
    at: &str,
    errs: &mut Vec<FieldError>,
) -> (LabelSelector, Option<LabelSelector>) {
    s.check(at, errs);
    let strip = |k: &str| {
        k.strip_prefix("k8s:")
            .or_else(|| k.strip_prefix("any:"))
            .unwrap_or(k)
            .to_string()
    };
    let mut pods = LabelSelector::default();
    let mut ns = LabelSelector::default();
    let mut names_ns = false;
    for (k, v) in &s.match_labels {
        let k = strip(k);
        if k == "io.kubernetes.pod.namespace" {
            names_ns = true;
            ns.match_labels
                .insert(NAMESPACE_NAME_LABEL.into(), v.clone());
        } else if let Some(l) = k.strip_prefix("io.cilium.k8s.namespace.labels.") {
            names_ns = true;
            ns.match_labels.insert(l.to_string(), v.clone());
        } else {
            pods.match_labels.insert(k, v.clone());
        }
    }
    for e in &s.match_expressions {
        let key = strip(&e.key);
        let mut e = e.clone();
        if key == "io.kubernetes.pod.namespace" {
            names_ns = true;
            e.key = NAMESPACE_NAME_LABEL.into();
            ns.match_expressions.push(e);
        } else if let Some(l) = key.strip_prefix("io.cilium.k8s.namespace.labels.") {
            names_ns = true;
            e.key = l.to_string();
            ns.match_expressions.push(e);
        } else {
            e.key = key;
            pods.match_expressions.push(e);
        }
    }
    (pods, names_ns.then_some(ns))
}

fn cilium_rule(at: &str, r: &CiliumRule, errs: &mut Vec<FieldError>) -> NpRule {
    let mut peers = Vec::new();
    let mut any_l3 = false;
    let mut any_peer = false;
    for (i, s) in r.from_endpoints.iter().flatten().enumerate() {
        any_l3 = true;
        let (pods, namespaces) = cilium_selector(s, &format!("{at}.fromEndpoints[{i}]"), errs);
        peers.push(Peer::Pods { namespaces, pods });
    }
    for (i, c) in r.from_cidr.iter().flatten().enumerate() {
        any_l3 = true;
        match cidr(c) {
            Ok(cidr) => peers.push(Peer::Cidr {
                cidr,
                except: Vec::new(),
            }),
            Err(e) => errs.push((format!("{at}.fromCIDR[{i}]"), e)),
        }
    }
    for (i, c) in r.from_cidr_set.iter().flatten().enumerate() {
        any_l3 = true;
        let except = c
            .except
            .iter()
            .filter_map(|e| {
                cidr(e)
                    .map_err(|m| errs.push((format!("{at}.fromCIDRSet[{i}].except"), m)))
                    .ok()
            })
            .collect();
        match cidr(&c.cidr) {
            Ok(cidr) => peers.push(Peer::Cidr { cidr, except }),
            Err(e) => errs.push((format!("{at}.fromCIDRSet[{i}].cidr"), e)),
        }
    }
    for (i, e) in r.from_entities.iter().flatten().enumerate() {
        any_l3 = true;
        match e.as_str() {
            "all" => any_peer = true,
            // Every pod of the cluster.
            "cluster" => peers.push(Peer::Pods {
                namespaces: Some(LabelSelector::default()),
                pods: LabelSelector::default(),
            }),
            // Outside the cluster, the node itself and other nodes: no pod is either, and
            // meshsim's node traffic does not cross a policy.
            "world" | "host" | "remote-node" => {}
            other => errs.push((
                format!("{at}.fromEntities[{i}]"),
                format!("entity `{other}` is not modelled; meshsim knows all, cluster, world, host and remote-node"),
            )),
        }
    }
    let mut ports = Vec::new();
    for (i, pr) in r.to_ports.iter().enumerate() {
        for (k, p) in pr.ports.iter().enumerate() {
            let at = format!("{at}.toPorts[{i}].ports[{k}]");
            let res = protocol(p.protocol.as_deref(), true)
                .map_err(|e| (format!("{at}.protocol"), e))
                .and_then(|protos| {
                    // Cilium's port 0 means every port.
                    let first = match &p.port {
                        PortValue::Number(0) => None,
                        PortValue::Text(s) if s == "0" => None,
                        v => Some(port_number(v).map_err(|e| (format!("{at}.port"), e))?),
                    };
                    range(first, p.end_port, protos).map_err(|e| (format!("{at}.endPort"), e))
                });
            match res {
                Ok(r) => ports.extend(r),
                Err(e) => errs.push(e),
            }
        }
    }
    let peers = if any_peer {
        None
    } else if any_l3 {
        Some(peers)
    } else if !r.to_ports.is_empty() {
        // L4 only: any peer on these ports.
        None
    } else {
        // `{}`: admits nothing; the endpoint is in default deny for this direction.
        Some(Vec::new())
    };
    NpRule { peers, ports }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k8s(yaml: &str) -> Result<Netpol, Vec<FieldError>> {
        let p: NetworkPolicy = serde_saphyr::from_str(yaml).expect("parses");
        Netpol::from_k8s(&p)
    }

    fn cilium(yaml: &str) -> Result<Netpol, Vec<FieldError>> {
        let p: CiliumNetworkPolicy = serde_saphyr::from_str(yaml).expect("parses");
        Netpol::from_cilium(&p)
    }

    #[test]
    fn kubernetes_defaults_and_empty_rules() {
        // policyTypes defaults to Ingress (plus Egress with egress rules); `ingress: [{}]`
        // admits every peer on every port, an absent `ingress` admits nothing.
        let p = k8s("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: prod}\nspec:\n  podSelector: {matchLabels: {app: pay}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: x}}\n      podSelector: {matchLabels: {app: order}}\n    ports:\n    - port: 8080\n    - port: 9000\n      endPort: 9010\n      protocol: UDP\n").expect("valid");
        assert!(p.egress.is_none());
        let r = &p.ingress.as_ref().expect("ingress")[0];
        assert_eq!(
            r.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["TCP 8080", "UDP 9000-9010"]
        );
        assert!(matches!(
            &r.peers.as_ref().expect("peers")[0],
            Peer::Pods {
                namespaces: Some(_),
                ..
            }
        ));
        let deny = k8s("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: d}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n").expect("valid");
        assert_eq!(deny.ingress, Some(vec![]));
        assert_eq!(deny.egress, Some(vec![]));
        let all = k8s("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: d}\nspec:\n  podSelector: {}\n  ingress: [{}]\n").expect("valid");
        assert_eq!(all.ingress.expect("ingress")[0].peers, None);
    }

    #[test]
    fn cilium_empty_rule_denies_and_l4_only_admits_any_peer() {
        let p = cilium("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c, namespace: prod}\nspec:\n  endpointSelector: {matchLabels: {app: pay}}\n  ingress:\n  - {}\n  - toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]\n  - fromEndpoints:\n    - matchLabels: {\"k8s:io.kubernetes.pod.namespace\": shop, app: order}\n  egress:\n  - toEndpoints: [{}]\n").expect("valid");
        let ing = p.ingress.expect("ingress");
        assert_eq!(
            ing[0].peers,
            Some(vec![]),
            "`{{}}` admits nothing in Cilium"
        );
        assert_eq!(ing[1].peers, None);
        assert_eq!(ing[1].ports[0].to_string(), "TCP 8080");
        let Some(Peer::Pods { namespaces, pods }) = ing[2].peers.as_ref().and_then(|v| v.first())
        else {
            panic!("pods peer")
        };
        assert_eq!(
            namespaces.as_ref().expect("namespace").match_labels[NAMESPACE_NAME_LABEL],
            "shop"
        );
        assert_eq!(pods.match_labels["app"], "order");
        // The empty endpoint selector: every pod of the policy's namespace.
        assert!(matches!(
            &p.egress.expect("egress")[0].peers.as_ref().expect("peers")[0],
            Peer::Pods {
                namespaces: None,
                ..
            }
        ));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = k8s("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: Is}]}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/33}}]\n    ports: [{port: http}, {port: 90, endPort: 80}]\n").expect_err("invalid");
        let fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.podSelector.matchExpressions[0].operator",
                "spec.ingress[0].from[0].ipBlock.cidr",
                "spec.ingress[0].ports[0].port",
                "spec.ingress[0].ports[1].endPort"
            ]
        );
        assert!(e[2].1.contains("named port `http`"), "{e:?}");
    }

    #[test]
    fn selectors_match_like_kubernetes() {
        let s: LabelSelector = serde_saphyr::from_str(
            "matchLabels: {app: a}\nmatchExpressions:\n- {key: tier, operator: NotIn, values: [db]}\n- {key: canary, operator: DoesNotExist}\n",
        )
        .expect("parses");
        let l = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(s.matches(&l(&[("app", "a")])));
        assert!(!s.matches(&l(&[("app", "a"), ("tier", "db")])));
        assert!(!s.matches(&l(&[("app", "a"), ("canary", "1")])));
        assert!(!s.matches(&l(&[("app", "b")])));
    }
}
