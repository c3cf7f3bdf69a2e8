//! Rules as a sidecar or waypoint (Envoy) enforces them: the RBAC policy pilot generates per
//! rule (`pilot/pkg/security/authz/model/model.go`, `New` and `Generate`), for the HTTP filter
//! (`Layer::L7`) or the network filter on a TCP port (`Layer::Tcp`).

use scenario::manifest::{Action, Condition, Operation, Rule, Source};

use super::matchers::{self, envoy_str};
use super::path::path_match;
use super::{Attrs, HttpAttrs, values_match as vals};

/// Whether a `when` key is one pilot's model knows (`model.go`, `New`); any other makes the
/// rule fail to build, so it is skipped whatever the action.
fn known_key(k: &str) -> bool {
    matches!(
        k,
        "destination.ip"
            | "destination.port"
            | "connection.sni"
            | "source.ip"
            | "remote.ip"
            | "source.namespace"
            | "source.serviceAccount"
            | "source.principal"
            | "request.auth.principal"
            | "request.auth.audiences"
            | "request.auth.presenter"
    ) || k.starts_with("request.headers")
        || k.starts_with("request.auth.claims")
}

/// Keys whose generators fail on the network filter: `"%q is HTTP only"` in
/// `model/generator.go` (request principal, audiences, presenter, headers, claims).
fn http_only_key(k: &str) -> bool {
    k.starts_with("request.")
}

fn source_http_only(s: &Source) -> bool {
    !s.request_principals.is_empty() || !s.not_request_principals.is_empty()
}

/// Hosts, methods and paths: HTTP-only for Envoy's network filter as for ztunnel.
fn op_http_only(o: &Operation) -> bool {
    super::ztunnel::op_http(o)
}

/// Whether pilot emits the rule into the filter at all. On a TCP port an HTTP-only field
/// makes the generator fail; `rule.checkError` (`model.go`) returns that error for ALLOW, so
/// the whole rule is skipped ("smaller allow"), and swallows it for DENY, AUDIT and CUSTOM.
pub fn generated(r: &Rule, tcp: bool, action: Action) -> bool {
    if !r.when.iter().all(|c| known_key(&c.key)) || r.when.iter().any(|c| claim_key_bad(&c.key)) {
        return false;
    }
    let has_http = r.from.iter().any(|f| source_http_only(&f.source))
        || r.to.iter().any(|t| op_http_only(&t.operation))
        || r.when.iter().any(|c| http_only_key(&c.key));
    !(tcp && action == Action::Allow && has_http)
}

fn claim_key_bad(k: &str) -> bool {
    k.strip_prefix("request.auth.claims")
        .is_some_and(|rest| matchers::claim_path(rest).is_none())
}

/// What one rule matches, as Envoy evaluates the generated policy: any `from` (principal) and
/// any `to` (permission), each also carrying every `when` condition. On a TCP port the
/// HTTP-only parts of a DENY / AUDIT / CUSTOM rule are dropped, which makes them match
/// anything ("wider deny"). Call only when [`generated`] holds.
pub fn rule_matches(r: &Rule, policy_ns: &str, a: &Attrs, tcp: bool) -> bool {
    let ctx = Ctx { a, policy_ns, tcp };
    (r.from.is_empty() || r.from.iter().any(|f| ctx.source(&f.source)))
        && (r.to.is_empty() || r.to.iter().any(|t| ctx.op(&t.operation)))
        && r.when.iter().all(|c| ctx.cond(c))
}

struct Ctx<'a> {
    a: &'a Attrs,
    policy_ns: &'a str,
    tcp: bool,
}

impl Ctx<'_> {
    fn http(&self) -> Option<&HttpAttrs> {
        self.a.http.as_ref()
    }

    /// An HTTP-only field: dropped (matches) on a TCP port, otherwise evaluated.
    fn http_field(&self, values: &[String], not: &[String], pred: impl Fn(&str) -> bool) -> bool {
        self.tcp || vals(values, not, pred)
    }

    fn principal(&self) -> Option<&str> {
        self.a.principal.as_deref()
    }

    fn source(&self, s: &Source) -> bool {
        let p = self.principal();
        let ns = self.policy_ns;
        vals(&s.principals, &s.not_principals, |v| {
            p.is_some_and(|p| envoy_str(v, p))
        }) && vals(&s.namespaces, &s.not_namespaces, |v| {
            p.is_some_and(|p| matchers::envoy_namespace(v, p))
        }) && vals(&s.service_accounts, &s.not_service_accounts, |v| {
            p.is_some_and(|p| matchers::envoy_service_account(v, ns, p))
        }) && vals(&s.ip_blocks, &s.not_ip_blocks, |v| {
            self.a.source_ip.is_some_and(|ip| matchers::ip_in(v, ip))
        }) && vals(&s.remote_ip_blocks, &s.not_remote_ip_blocks, |v| {
            self.a.remote().is_some_and(|ip| matchers::ip_in(v, ip))
        }) && self.http_field(&s.request_principals, &s.not_request_principals, |v| {
            self.http().is_some_and(|h| request_principal(v, h))
        })
    }

    fn op(&self, o: &Operation) -> bool {
        let h = self.http();
        let ports: Vec<String> = o.ports.iter().map(|p| p.0.to_string()).collect();
        let not_ports: Vec<String> = o.not_ports.iter().map(|p| p.0.to_string()).collect();
        let port = self.a.dest_port.to_string();
        vals(&ports, &not_ports, |v| v == port)
            && self.http_field(&o.hosts, &o.not_hosts, |v| {
                h.is_some_and(|h| !h.host.is_empty() && matchers::host(v, &h.host))
            })
            && self.http_field(&o.methods, &o.not_methods, |v| {
                h.is_some_and(|h| matchers::header(v, &h.method))
            })
            && self.http_field(&o.paths, &o.not_paths, |v| {
                h.is_some_and(|h| path_match(v, &h.path))
            })
    }

    fn cond(&self, c: &Condition) -> bool {
        let (v, nv) = (&c.values, &c.not_values);
        let a = self.a;
        let p = self.principal();
        let h = self.http();
        match c.key.as_str() {
            "destination.ip" => vals(v, nv, |x| {
                a.dest_ip.is_some_and(|ip| matchers::ip_in(x, ip))
            }),
            "destination.port" => vals(v, nv, |x| x.parse::<u16>() == Ok(a.dest_port)),
            "connection.sni" => vals(v, nv, |x| a.sni.as_deref().is_some_and(|s| envoy_str(x, s))),
            "source.ip" => vals(v, nv, |x| {
                a.source_ip.is_some_and(|ip| matchers::ip_in(x, ip))
            }),
            "remote.ip" => vals(v, nv, |x| {
                a.remote().is_some_and(|ip| matchers::ip_in(x, ip))
            }),
            "source.namespace" => vals(v, nv, |x| {
                p.is_some_and(|p| matchers::envoy_namespace(x, p))
            }),
            "source.serviceAccount" => vals(v, nv, |x| {
                p.is_some_and(|p| matchers::envoy_service_account(x, self.policy_ns, p))
            }),
            "source.principal" => vals(v, nv, |x| p.is_some_and(|p| envoy_str(x, p))),
            "request.auth.principal" => {
                self.http_field(v, nv, |x| h.is_some_and(|h| request_principal(x, h)))
            }
            "request.auth.audiences" => self.http_field(v, nv, |x| {
                h.is_some_and(|h| h.audiences().iter().any(|aud| envoy_str(x, aud)))
            }),
            "request.auth.presenter" => self.http_field(v, nv, |x| {
                h.is_some_and(|h| h.presenter().iter().any(|azp| envoy_str(x, azp)))
            }),
            k => self.map_cond(k, c),
        }
    }

    fn map_cond(&self, k: &str, c: &Condition) -> bool {
        let h = self.http();
        if let Some(rest) = k.strip_prefix("request.headers") {
            let name = rest
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .unwrap_or(rest)
                .to_ascii_lowercase();
            return self.http_field(&c.values, &c.not_values, |x| {
                h.and_then(|h| h.header(&name))
                    .is_some_and(|hv| matchers::header(x, &hv))
            });
        }
        if let Some(rest) = k.strip_prefix("request.auth.claims") {
            let path = matchers::claim_path(rest).unwrap_or_default();
            return self.http_field(&c.values, &c.not_values, |x| {
                h.and_then(|h| h.request_claims.as_ref()).is_some_and(|cl| {
                    matchers::claim_strings(cl, &path)
                        .iter()
                        .any(|s| envoy_str(x, s))
                })
            });
        }
        false
    }
}

/// `requestPrincipals` / `request.auth.principal` as `requestPrincipalGenerator`
/// (`model/generator.go`) compiles them: the value is cut at its last `/` into issuer and
/// subject and each is matched against the token's `iss` and `sub` claims; `*` needs both to
/// be non-empty; `*x` without a `/` is any issuer with a subject ending in `x`; `x*` without a
/// `/` an issuer starting with `x` and any subject.
pub fn request_principal(value: &str, h: &HttpAttrs) -> bool {
    let Some((iss, sub)) = h.iss_sub() else {
        return false;
    };
    let any = |s: &str| !s.is_empty();
    let (vi, vs) = match value.rfind('/') {
        Some(i) => (Some(&value[..i]), &value[i + 1..]),
        None => (None, value),
    };
    if value == "*" {
        return any(iss) && any(sub);
    }
    if let Some(rest) = value.strip_prefix('*') {
        return match vi {
            Some("*") => any(iss) && sub == vs,
            Some(i) => iss.ends_with(&i[1..]) && sub == vs,
            None => any(iss) && sub.ends_with(rest),
        };
    }
    if let Some(rest) = value.strip_suffix('*') {
        return match vi {
            Some(i) if vs == "*" => iss == i && any(sub),
            Some(i) => iss == i && sub.starts_with(&vs[..vs.len() - 1]),
            None => iss.starts_with(rest) && any(sub),
        };
    }
    match vi {
        Some(i) => iss == i && sub == vs,
        None => iss == value && sub.is_empty(),
    }
}
