//! Rules as ztunnel enforces them: translated by pilot for the workload API
//! (`pilot/pkg/serviceregistry/ambient/authorization.go`, `convertAuthorizationPolicy` and
//! `handleRule`) and matched by ztunnel (`src/rbac.rs`, `Authorization::matches`).
//!
//! A rule becomes a group of clauses (one for `to`, one for `from`, one per `when`); a clause
//! holds one match per entry, ORed; an empty match is skipped (matches nothing), so a clause
//! made only of HTTP entries never matches; a rule with no clauses (`{}`) matches everything.

use scenario::manifest::{Action, Condition, Operation, Rule, Source};

use super::matchers::{self, ztunnel_str};
use super::{Attrs, values_match as vals};

/// `l4WhenAttributes` in `authorization.go`. Every other key (including `remote.ip`,
/// `connection.sni`, `source.serviceAccount`, `request.*`) is an HTTP attribute to ztunnel.
fn l4_key(k: &str) -> bool {
    matches!(
        k,
        "source.ip"
            | "source.namespace"
            | "source.principal"
            | "destination.ip"
            | "destination.port"
    )
}

/// `httpSources`: the `Source` fields ztunnel cannot see (`remoteIpBlocks` needs the HTTP
/// forwarding headers).
fn source_http(s: &Source) -> bool {
    !(s.remote_ip_blocks.is_empty()
        && s.not_remote_ip_blocks.is_empty()
        && s.request_principals.is_empty()
        && s.not_request_principals.is_empty())
}

/// `httpOperations`: hosts, methods and paths (Envoy's TCP filter drops the same fields).
pub(super) fn op_http(o: &Operation) -> bool {
    !(o.hosts.is_empty()
        && o.not_hosts.is_empty()
        && o.methods.is_empty()
        && o.not_methods.is_empty()
        && o.paths.is_empty()
        && o.not_paths.is_empty())
}

/// Whether the rule holds any HTTP attribute (what pilot warns about).
pub fn has_http(r: &Rule) -> bool {
    r.from.iter().any(|f| source_http(&f.source))
        || r.to.iter().any(|t| op_http(&t.operation))
        || r.when.iter().any(|c| !l4_key(&c.key))
}

/// Whether pilot sends the rule: in an ALLOW policy a rule with HTTP attributes is dropped
/// (`handleRule`: "L7 policies never match for ALLOW").
pub fn generated(r: &Rule, action: Action) -> bool {
    !(action == Action::Allow && has_http(r))
}

/// Whether ztunnel's translated rule matches the connection. Call only when [`generated`]
/// holds.
pub fn rule_matches(r: &Rule, policy_ns: &str, a: &Attrs) -> bool {
    let to = r.to.is_empty() || r.to.iter().any(|t| op_match(&t.operation, a));
    let from = r.from.is_empty() || r.from.iter().any(|f| source_match(&f.source, policy_ns, a));
    to && from && r.when.iter().all(|c| cond_match(c, a))
}

fn ports(p: &[scenario::manifest::PortString]) -> Vec<String> {
    p.iter().map(|p| p.0.to_string()).collect()
}

/// The `to` entry keeps only its ports; without them it is an empty match (skipped).
fn op_match(o: &Operation, a: &Attrs) -> bool {
    if o.ports.is_empty() && o.not_ports.is_empty() {
        return false;
    }
    let port = a.dest_port.to_string();
    vals(&ports(&o.ports), &ports(&o.not_ports), |v| v == port)
}

/// The `from` entry keeps IPs, namespaces, service accounts and principals; namespace and
/// principal come from the peer's SPIFFE identity (absent when plaintext).
fn source_match(s: &Source, policy_ns: &str, a: &Attrs) -> bool {
    let l4_empty = s.ip_blocks.is_empty()
        && s.not_ip_blocks.is_empty()
        && s.namespaces.is_empty()
        && s.not_namespaces.is_empty()
        && s.service_accounts.is_empty()
        && s.not_service_accounts.is_empty()
        && s.principals.is_empty()
        && s.not_principals.is_empty();
    if l4_empty {
        return false;
    }
    let p = a.principal.as_deref();
    let ns = a.peer_namespace();
    let ip = a.source_ip;
    vals(&s.ip_blocks, &s.not_ip_blocks, |v| {
        ip.is_some_and(|ip| matchers::ip_in(v, ip))
    }) && vals(&s.namespaces, &s.not_namespaces, |v| {
        ns.is_some_and(|n| ztunnel_str(v, n))
    }) && vals(&s.service_accounts, &s.not_service_accounts, |v| {
        p.is_some_and(|p| matchers::ztunnel_service_account(v, policy_ns, p))
    }) && vals(&s.principals, &s.not_principals, |v| {
        p.is_some_and(|p| ztunnel_str(v, p))
    })
}

/// Each `when` is its own clause with one match; a key ztunnel lacks gives an empty match,
/// so the clause (and the rule) never matches.
fn cond_match(c: &Condition, a: &Attrs) -> bool {
    let (v, nv) = (&c.values, &c.not_values);
    let ip_in =
        |ip: Option<std::net::IpAddr>| move |x: &str| ip.is_some_and(|ip| matchers::ip_in(x, ip));
    match c.key.as_str() {
        "source.ip" => vals(v, nv, ip_in(a.source_ip)),
        "destination.ip" => vals(v, nv, ip_in(a.dest_ip)),
        "destination.port" => vals(v, nv, |x| x.parse::<u16>() == Ok(a.dest_port)),
        "source.namespace" => vals(v, nv, |x| {
            a.peer_namespace().is_some_and(|n| ztunnel_str(x, n))
        }),
        "source.principal" => vals(v, nv, |x| {
            a.principal.as_deref().is_some_and(|p| ztunnel_str(x, p))
        }),
        _ => false,
    }
}
