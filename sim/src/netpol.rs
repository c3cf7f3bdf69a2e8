//! NetworkPolicy enforced as a CNI enforces it: on the node, on the packets that cross
//! between the node and its pods, whatever proxy sent them.
//!
//! Each node gets one nftables table with a `forward` chain: a pod that a policy isolates for
//! ingress has a chain for packets routed to it, one isolated for egress a chain for packets
//! routed from it. Only a connection's first packet is judged (established traffic passes, as
//! with Calico and Cilium), after the node's service DNAT, so egress rules see the endpoint
//! and not the service VIP. What is dropped is counted per pod and direction, separately for
//! HBONE (15008): ambient traffic between pods arrives on 15008, not on the app's port, so a
//! policy that admits only the app's port drops it
//! (https://istio.io/latest/docs/ambient/usage/networkpolicy/).
//!
//! Packets a link fault's wire ([`crate::wire`]) sends back through the node were judged on
//! their way in, and pass.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use scenario::netpol::{NAMESPACE_NAME_LABEL, Netpol, NpRule, Peer};

use crate::netns::NetNsRef;
use crate::nft::{self, NftError};
use crate::proxy::capture::HBONE_PORT;

const TABLE: &str = "meshsim-netpol";

/// A pod as the policies see it.
pub struct PodView<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub ip: Ipv4Addr,
    pub node: usize,
    pub node_name: &'a str,
}

/// One pod's chain in one direction.
#[derive(Debug, Clone)]
pub struct Guard {
    pub pod: String,
    pub node: String,
    pub ingress: bool,
    /// The policies that isolate the pod in this direction, each with what it admits.
    pub policies: Vec<String>,
}

/// The rules of every node, and what each drop counter stands for.
#[derive(Debug, Clone, Default)]
pub struct Enforced {
    /// Per node index, its nftables rule set (nodes with nothing isolated: none).
    pub rules: BTreeMap<usize, String>,
    /// Per guard, by its counter's base name (`in_3`, `out_0`).
    pub guards: BTreeMap<String, Guard>,
}

/// What the rules dropped, by counter name (`in_3`, `in_3_hbone`), in packets.
pub type Drops = BTreeMap<String, u64>;

fn ns_matches(
    p: &Netpol,
    sel: Option<&scenario::netpol::LabelSelector>,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    match sel {
        None => ns == p.namespace,
        Some(s) => {
            let mut l = labels.clone();
            l.insert(NAMESPACE_NAME_LABEL.into(), ns.to_string());
            s.matches(&l)
        }
    }
}

/// What one rule admits from (or to) `pods`, as nftables match expressions per peer; `None`
/// inside: any peer.
fn peer_matches(
    p: &Netpol,
    rule: &NpRule,
    pods: &[PodView<'_>],
    ns_labels: &dyn Fn(&str) -> BTreeMap<String, String>,
    field: &str,
) -> Vec<Option<String>> {
    let Some(peers) = &rule.peers else {
        return vec![None];
    };
    let mut out = Vec::new();
    for peer in peers {
        match peer {
            Peer::Pods {
                namespaces,
                pods: sel,
            } => {
                let ips: Vec<String> = pods
                    .iter()
                    .filter(|q| {
                        ns_matches(p, namespaces.as_ref(), q.namespace, &ns_labels(q.namespace))
                            && sel.matches(q.labels)
                    })
                    .map(|q| q.ip.to_string())
                    .collect();
                if !ips.is_empty() {
                    out.push(Some(format!("{field} {{ {} }}", ips.join(", "))));
                }
            }
            Peer::Cidr { cidr, except } => {
                let mut m = format!("{field} {}/{}", cidr.0, cidr.1);
                if !except.is_empty() {
                    let ex: Vec<String> = except.iter().map(|(a, l)| format!("{a}/{l}")).collect();
                    let _ = write!(m, " {field} != {{ {} }}", ex.join(", "));
                }
                out.push(Some(m));
            }
        }
    }
    out
}

/// The port part of a rule, one expression per protocol; `None` inside: every port.
fn port_matches(rule: &NpRule) -> Vec<Option<String>> {
    if rule.ports.is_empty() {
        return vec![None];
    }
    let mut by_proto: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut whole: Vec<&str> = Vec::new();
    for r in &rule.ports {
        match r.first {
            None => whole.push(&r.protocol),
            Some(a) if a == r.last => by_proto.entry(&r.protocol).or_default().push(a.to_string()),
            Some(a) => by_proto
                .entry(&r.protocol)
                .or_default()
                .push(format!("{a}-{}", r.last)),
        }
    }
    let mut out: Vec<Option<String>> = whole
        .iter()
        .map(|p| Some(format!("meta l4proto {p}")))
        .collect();
    for (proto, ports) in by_proto {
        if !whole.contains(&proto) {
            out.push(Some(format!("{proto} dport {{ {} }}", ports.join(", "))));
        }
    }
    out
}

/// What a direction of a policy admits, in a line of the report.
fn summary(p: &Netpol, rules: &[NpRule]) -> String {
    let ports = match Netpol::ports(rules) {
        _ if rules.is_empty() => "nothing".to_string(),
        None => "every port".to_string(),
        Some(v) => v.join(", "),
    };
    format!("{} admits {ports}", p.id())
}

/// The nftables rules that enforce `policies` on `pods`, per node.
pub fn plan(
    policies: &[Netpol],
    pods: &[PodView<'_>],
    ns_labels: &dyn Fn(&str) -> BTreeMap<String, String>,
) -> Enforced {
    let mut out = Enforced::default();
    let mut chains: BTreeMap<usize, (String, String, String)> = BTreeMap::new();
    for (i, pod) in pods.iter().enumerate() {
        for ingress in [true, false] {
            let applying: Vec<(&Netpol, &Vec<NpRule>)> = policies
                .iter()
                .filter(|p| p.namespace == pod.namespace && p.selector.matches(pod.labels))
                .filter_map(|p| {
                    let rules = if ingress { &p.ingress } else { &p.egress };
                    rules.as_ref().map(|r| (p, r))
                })
                .collect();
            if applying.is_empty() {
                continue;
            }
            let (dir, peer_field, me) = if ingress {
                ("in", "ip saddr", "ip daddr")
            } else {
                ("out", "ip daddr", "ip saddr")
            };
            let name = format!("{dir}_{i}");
            let (counters, dispatch, body) = chains.entry(pod.node).or_default();
            let _ = writeln!(
                counters,
                "  counter {name} {{ }}\n  counter {name}_hbone {{ }}"
            );
            let _ = writeln!(dispatch, "    {me} {} jump {name}", pod.ip);
            let _ = writeln!(body, "  chain {name} {{");
            for (p, rules) in &applying {
                for rule in rules.iter() {
                    for peer in peer_matches(p, rule, pods, ns_labels, peer_field) {
                        for port in port_matches(rule) {
                            let m: Vec<&str> = [peer.as_deref(), port.as_deref()]
                                .into_iter()
                                .flatten()
                                .collect();
                            let _ = writeln!(body, "    {} return", m.join(" "));
                        }
                    }
                }
            }
            let _ = writeln!(
                body,
                "    tcp dport {HBONE_PORT} counter name \"{name}_hbone\" drop\n    counter name \"{name}\" drop\n  }}"
            );
            out.guards.insert(
                name,
                Guard {
                    pod: pod.name.to_string(),
                    node: pod.node_name.to_string(),
                    ingress,
                    policies: applying.iter().map(|(p, r)| summary(p, r)).collect(),
                },
            );
        }
    }
    for (node, (counters, dispatch, body)) in chains {
        let rules = format!(
            "table inet {TABLE} {{\n{counters}  chain forward {{\n    type filter hook forward priority filter; policy accept;\n    ct state established,related accept\n    iifname \"mw*-out\" accept\n{dispatch}  }}\n{body}}}\n"
        );
        out.rules.insert(node, rules);
    }
    out
}

/// The policies of a scenario (at a stage), with the pods of the cluster built from it.
pub fn plan_for(
    loaded: &scenario::Loaded,
    spec: &crate::topology::ClusterSpec,
    topology: &crate::topology::Topology,
) -> Enforced {
    let policies: Vec<Netpol> = loaded.objects().filter_map(|o| o.object.netpol()).collect();
    if policies.is_empty() {
        return Enforced::default();
    }
    let pods: Vec<PodView<'_>> = spec
        .pods
        .iter()
        .zip(&topology.pods)
        .map(|(s, t)| PodView {
            name: &s.name,
            namespace: &s.namespace,
            labels: &s.labels,
            ip: t.ip,
            node: t.node,
            node_name: &topology.nodes[t.node].name,
        })
        .collect();
    // Each namespace's labels once, not once a pod and peer.
    let labels: BTreeMap<String, BTreeMap<String, String>> = loaded
        .namespace_names()
        .into_iter()
        .map(|n| {
            let l = loaded.namespace_labels(&n);
            (n, l)
        })
        .collect();
    plan(&policies, &pods, &|ns| {
        labels.get(ns).cloned().unwrap_or_default()
    })
}

/// Puts `next` in place of `prev` on every node, each node's table replaced atomically.
pub fn apply(nodes: &[NetNsRef], prev: Option<&Enforced>, next: &Enforced) -> Result<(), NftError> {
    for (i, ns) in nodes.iter().enumerate() {
        let had = prev.is_some_and(|p| p.rules.contains_key(&i));
        let mut text = String::new();
        if had {
            // Declaring the table first makes the delete valid however the table stands.
            let _ = writeln!(text, "table inet {TABLE} {{ }}\ndelete table inet {TABLE}");
        }
        if let Some(r) = next.rules.get(&i) {
            text.push_str(r);
        }
        if !text.is_empty() {
            nft::apply(ns, &text)?;
        }
    }
    Ok(())
}

/// The drop counters of every node, read from the kernel.
pub fn drops(nodes: &[NetNsRef], e: &Enforced) -> Result<Drops, NftError> {
    let mut out = Drops::new();
    for (i, ns) in nodes.iter().enumerate() {
        if !e.rules.contains_key(&i) {
            continue;
        }
        let text = nft::output(ns, &["-j", "list", "counters", "table", "inet", TABLE])?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        for item in v["nftables"].as_array().into_iter().flatten() {
            let c = &item["counter"];
            if let (Some(name), Some(packets)) = (c["name"].as_str(), c["packets"].as_u64()) {
                out.insert(name.to_string(), packets);
            }
        }
    }
    Ok(out)
}

/// Each guard that dropped packets between two readings, as a decision of the CNI.
pub fn dropped(e: &Enforced, before: &Drops, after: &Drops) -> Vec<crate::mesh::decisions::Record> {
    let grew = |k: &str| after.get(k).copied().unwrap_or(0) > before.get(k).copied().unwrap_or(0);
    e.guards
        .iter()
        .filter_map(|(name, g)| {
            let hbone = grew(&format!("{name}_hbone"));
            if !hbone && !grew(name) {
                return None;
            }
            let what = if hbone {
                format!(
                    "TCP {HBONE_PORT} (HBONE: ambient traffic arrives there, not on the app's port)"
                )
            } else {
                "a connection no rule admits".to_string()
            };
            Some(crate::mesh::decisions::Record {
                proxy: format!("NetworkPolicy (CNI) on {}", g.node),
                src_ip: None,
                port: if hbone { HBONE_PORT } else { 0 },
                request: None,
                allowed: false,
                by: format!(
                    "{} of {} dropped {what}; {}",
                    if g.ingress { "ingress" } else { "egress" },
                    g.pod,
                    g.policies.join("; ")
                ),
                mtls: false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Netpol {
        let (m, errs) = scenario::manifest::parse_file(std::path::Path::new("p.yaml"), yaml);
        assert!(errs.is_empty(), "{errs:?}");
        m.objects[0].object.netpol().expect("a network policy")
    }

    fn labels(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_ingress_policy_becomes_a_chain_on_the_pods_node() {
        let p = policy(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: app-port, namespace: prod}\nspec:\n  podSelector: {matchLabels: {app: pay}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: order}}}]\n    ports: [{port: 8080}]\n",
        );
        let (pay, order, other) = (
            labels(&[("app", "pay")]),
            labels(&[("app", "order")]),
            labels(&[("app", "order")]),
        );
        let pods = [
            PodView {
                name: "order-0",
                namespace: "prod",
                labels: &order,
                ip: Ipv4Addr::new(10, 1, 0, 2),
                node: 0,
                node_name: "node-1",
            },
            PodView {
                name: "pay-0",
                namespace: "prod",
                labels: &pay,
                ip: Ipv4Addr::new(10, 2, 0, 2),
                node: 1,
                node_name: "node-2",
            },
            // Same labels in another namespace: a bare podSelector stays in the policy's.
            PodView {
                name: "order-x",
                namespace: "dev",
                labels: &other,
                ip: Ipv4Addr::new(10, 1, 0, 3),
                node: 0,
                node_name: "node-1",
            },
        ];
        let e = plan(&[p], &pods, &|_| BTreeMap::new());
        assert!(!e.rules.contains_key(&0), "nothing isolated on node 0");
        let r = &e.rules[&1];
        assert!(r.contains("ip daddr 10.2.0.2 jump in_1"), "{r}");
        assert!(
            r.contains("ip saddr { 10.1.0.2 } tcp dport { 8080 } return"),
            "{r}"
        );
        assert!(!r.contains("10.1.0.3"), "{r}");
        assert!(
            r.contains("tcp dport 15008 counter name \"in_1_hbone\" drop"),
            "{r}"
        );
        assert_eq!(
            e.guards["in_1"].policies,
            ["NetworkPolicy prod/app-port admits TCP 8080"]
        );
    }

    #[test]
    fn drops_name_the_guard_and_hbone() {
        let mut e = Enforced::default();
        e.guards.insert(
            "in_1".into(),
            Guard {
                pod: "pay-0".into(),
                node: "node-2".into(),
                ingress: true,
                policies: vec!["NetworkPolicy prod/app-port admits TCP 8080".into()],
            },
        );
        let before = Drops::from([("in_1_hbone".to_string(), 0)]);
        let after = Drops::from([("in_1_hbone".to_string(), 3)]);
        let r = dropped(&e, &before, &after);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].proxy, "NetworkPolicy (CNI) on node-2");
        assert!(
            r[0].by
                .starts_with("ingress of pay-0 dropped TCP 15008 (HBONE"),
            "{}",
            r[0].by
        );
        assert!(dropped(&e, &after, &after).is_empty());
    }
}
