//! Structural changes between two runs: the paths flows take and what proxies hold. These are
//! facts of the scenario, not measurements, so they are compared exactly and named, not judged
//! against noise.

use std::collections::{BTreeMap, BTreeSet};

use crate::run::{PathStructure, Structure};

/// `waypoint payment-waypoint` → `a waypoint hop (payment-waypoint)`.
fn hop_phrase(route_entry: &str) -> String {
    match route_entry.split_once(' ') {
        Some((kind @ ("sidecar" | "ztunnel" | "waypoint"), rest)) => {
            format!("a {kind} hop ({rest})")
        }
        _ => format!("`{route_entry}`"),
    }
}

/// Per proxy on a flow's paths: the most policies and rules it considers.
fn checks(paths: &[PathStructure]) -> BTreeMap<&str, (usize, usize)> {
    let mut out: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for p in paths {
        for c in &p.checks {
            let e = out.entry(c.proxy.as_str()).or_default();
            e.0 = e.0.max(c.policies);
            e.1 = e.1.max(c.rules);
        }
    }
    out
}

fn flow_changes(flow: &str, base: &[PathStructure], new: &[PathStructure]) -> Vec<String> {
    let mut out = Vec::new();
    let hops = |ps: &[PathStructure]| -> BTreeSet<String> {
        ps.iter()
            .flat_map(|p| p.route.iter().skip(1).cloned())
            .collect()
    };
    let (bh, nh) = (hops(base), hops(new));
    for h in nh.difference(&bh) {
        out.push(format!("flow {flow} gained {}", hop_phrase(h)));
    }
    for h in bh.difference(&nh) {
        out.push(format!("flow {flow} lost {}", hop_phrase(h)));
    }
    let count = |ps: &[PathStructure]| ps.iter().map(|p| p.hops).max().unwrap_or(0);
    if count(base) != count(new) {
        out.push(format!(
            "flow {flow}: {} proxy hop(s) on its longest path, was {}",
            count(new),
            count(base)
        ));
    }
    let (bc, nc) = (checks(base), checks(new));
    for (proxy, &(np, nr)) in &nc {
        match bc.get(proxy) {
            Some(&(bp, br)) if (bp, br) != (np, nr) => out.push(format!(
                "flow {flow}: {proxy} considers {np} policies with {nr} rules, was {bp} with {br}"
            )),
            None if np > 0 => out.push(format!(
                "flow {flow}: {proxy} now considers {np} policies with {nr} rules"
            )),
            _ => {}
        }
    }
    for (proxy, &(bp, br)) in &bc {
        if !nc.contains_key(proxy) && bp > 0 {
            out.push(format!(
                "flow {flow}: {proxy} no longer checks ({bp} policies with {br} rules before)"
            ));
        }
    }
    let outcomes = |ps: &[PathStructure]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for p in ps {
            *m.entry(p.outcome.clone()).or_insert(0) += p.endpoints;
        }
        m
    };
    let (bo, no) = (outcomes(base), outcomes(new));
    if bo != no {
        let show = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(o, n)| format!("{o} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "flow {flow}: predicted outcome per endpoint {}, was {}",
            show(&no),
            show(&bo)
        ));
    }
    out
}

/// Every structural difference from `base` to `new`, one sentence each.
pub fn changes(base: &Structure, new: &Structure) -> Vec<String> {
    let mut out = Vec::new();
    for (flow, b) in &base.flows {
        match new.flows.get(flow) {
            Some(n) => out.extend(flow_changes(flow, b, n)),
            None => out.push(format!("flow {flow} has no predicted path in the new run")),
        }
    }
    for flow in new.flows.keys().filter(|f| !base.flows.contains_key(*f)) {
        out.push(format!("flow {flow} has no predicted path in the base run"));
    }
    let scope = |s: &crate::run::ProxyScope| {
        format!(
            "{} services, {} endpoints, {} workloads, {} policies",
            s.services, s.endpoints, s.workloads, s.policies
        )
    };
    for (proxy, b) in &base.proxies {
        match new.proxies.get(proxy) {
            Some(n) if n != b => out.push(format!(
                "proxy {proxy} holds {}, was {}",
                scope(n),
                scope(b)
            )),
            Some(_) => {}
            None => out.push(format!("proxy {proxy} is gone (held {})", scope(b))),
        }
    }
    for (proxy, n) in &new.proxies {
        if !base.proxies.contains_key(proxy) {
            out.push(format!("proxy {proxy} is new (holds {})", scope(n)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{HopChecks, ProxyScope};

    fn path(route: &[&str], checks: &[(&str, usize, usize)]) -> PathStructure {
        PathStructure {
            route: route.iter().map(|s| s.to_string()).collect(),
            hops: route.len() - 1,
            checks: checks
                .iter()
                .map(|&(p, policies, rules)| HopChecks {
                    proxy: p.into(),
                    policies,
                    rules,
                })
                .collect(),
            outcome: "allowed".into(),
            endpoints: 1,
        }
    }

    #[test]
    fn a_new_waypoint_hop_and_its_policy_are_named() {
        let mut base = Structure::default();
        base.flows.insert(
            "payments".into(),
            vec![path(
                &[
                    "order-0 (ambient)",
                    "ztunnel for order-0 (outbound)",
                    "ztunnel for payment",
                ],
                &[("ztunnel for payment", 0, 0)],
            )],
        );
        let mut new = base.clone();
        new.flows.insert(
            "payments".into(),
            vec![path(
                &[
                    "order-0 (ambient)",
                    "ztunnel for order-0 (outbound)",
                    "waypoint payment-waypoint",
                    "ztunnel for payment",
                ],
                &[
                    ("waypoint payment-waypoint", 1, 2),
                    ("ztunnel for payment", 0, 0),
                ],
            )],
        );
        new.proxies.insert(
            "waypoint-payment-waypoint-0".into(),
            ProxyScope {
                services: 1,
                endpoints: 2,
                workloads: 0,
                policies: 1,
            },
        );
        let c = changes(&base, &new);
        assert_eq!(
            c,
            vec![
                "flow payments gained a waypoint hop (payment-waypoint)",
                "flow payments: 3 proxy hop(s) on its longest path, was 2",
                "flow payments: waypoint payment-waypoint now considers 1 policies with 2 rules",
                "proxy waypoint-payment-waypoint-0 is new (holds 1 services, 2 endpoints, 0 workloads, 1 policies)",
            ]
        );
        assert!(changes(&new, &new).is_empty());
    }
}
