//! The value matchers Istio generates for policy fields, each as the proxy evaluates it.

use std::net::IpAddr;

/// Istio's plain string match as Envoy gets it (`pilot/pkg/security/authz/matcher/string.go`,
/// `StringMatcherWithPrefix`): `*` is the regex `.+` (any non-empty value), `*x` a suffix, `x*`
/// a prefix, anything else exact (so `a*b` is the literal `a*b`).
pub fn envoy_str(pattern: &str, v: &str) -> bool {
    if pattern == "*" {
        return !v.is_empty();
    }
    if let Some(s) = pattern.strip_prefix('*') {
        return v.ends_with(s);
    }
    if let Some(p) = pattern.strip_suffix('*') {
        return v.starts_with(p);
    }
    pattern == v
}

/// ztunnel's `StringMatch` built by pilot's `stringToMatch`
/// (`pilot/pkg/serviceregistry/ambient/authorization.go`) and checked in ztunnel `src/rbac.rs`
/// (`StringMatch::matches`): `*` is Presence (non-empty), otherwise as [`envoy_str`].
pub fn ztunnel_str(pattern: &str, v: &str) -> bool {
    envoy_str(pattern, v)
}

/// Envoy's `HeaderMatcher` from Istio's `matcher.HeaderMatcher` (`matcher/header.go`): `*` is
/// `present_match` (an empty value counts), else suffix / prefix / exact, case-sensitive.
pub fn header(pattern: &str, v: &str) -> bool {
    pattern == "*" || envoy_str(pattern, v)
}

/// `matcher.HostMatcher` (`matcher/header.go`): like [`header`] but case-insensitive.
pub fn host(pattern: &str, v: &str) -> bool {
    pattern == "*" || envoy_str(&pattern.to_ascii_lowercase(), &v.to_ascii_lowercase())
}

/// An address or CIDR (`10.0.0.1`, `10.0.0.0/8`, `::1/128`) containing `ip`. A bad block
/// matches nothing: pilot drops it (`stringToIP`, `util.AddrStrToCidrRange`) and validation
/// rejects it first.
pub fn ip_in(block: &str, ip: IpAddr) -> bool {
    let (net, len) = match block.split_once('/') {
        Some((n, l)) => match l.parse::<u32>() {
            Ok(l) => (n, l),
            Err(_) => return false,
        },
        None => (block, if block.contains(':') { 128 } else { 32 }),
    };
    match (net.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(n)), IpAddr::V4(i)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (Ok(IpAddr::V6(n)), IpAddr::V6(i)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Wildcard match where every `*` is any run of characters (the regex `.*`); used for the
/// regexes pilot builds out of globs.
pub fn glob(pattern: &str, v: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), v.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A SPIFFE-style principal `<td>/ns/<ns>/sa/<sa>` split into its parts.
pub struct Identity<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
}

pub fn identity(principal: &str) -> Option<Identity<'_>> {
    let (td, rest) = principal.split_once("/ns/")?;
    let (ns, sa) = rest.split_once("/sa/")?;
    (!td.is_empty() && !ns.is_empty() && !sa.is_empty() && !sa.contains('/')).then_some(Identity {
        namespace: ns,
        service_account: sa,
    })
}

/// Envoy's source namespace match: the regex `.*/ns/<ns>/.*` over the peer's URI SAN, with
/// each `*` in the value turned into `.*` (`model/generator.go`, `srcNamespaceGenerator`). So
/// `a*b` works here, unlike at ztunnel.
pub fn envoy_namespace(pattern: &str, principal: &str) -> bool {
    glob(
        &format!("*/ns/{pattern}/*"),
        &format!("spiffe://{principal}"),
    )
}

/// Envoy's service account match (`model/generator.go`, `serviceAccountRegex`): the full-match
/// regex `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`, the namespace defaulting to the policy's.
pub fn envoy_service_account(value: &str, policy_ns: &str, principal: &str) -> bool {
    let (ns, sa) = value.split_once('/').unwrap_or((policy_ns, value));
    let needle = format!("/ns/{ns}/");
    let mut from = 0;
    while let Some(off) = principal[from..].find(&needle) {
        let at = from + off;
        let rest = &principal[at + needle.len()..];
        if at > 0 && sa_tail(rest, sa) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// `(.+/|)sa/<sa>(/.+)?` over what follows `/ns/<ns>/`.
fn sa_tail(rest: &str, sa: &str) -> bool {
    let tail_ok = |t: &str| t.is_empty() || t.strip_prefix('/').is_some_and(|t| !t.is_empty());
    let head = format!("sa/{sa}");
    if rest.strip_prefix(&head).is_some_and(tail_ok) {
        return true;
    }
    let mid = format!("/sa/{sa}");
    let mut from = 0;
    while let Some(off) = rest[from..].find(&mid) {
        let at = from + off;
        if at > 0 && tail_ok(&rest[at + mid.len()..]) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// ztunnel's `ServiceAccountMatch` (ztunnel `src/rbac.rs`): namespace and name equal to the
/// peer identity's, the namespace defaulting to the policy's (`stringToServiceAccountMatch`).
pub fn ztunnel_service_account(value: &str, policy_ns: &str, principal: &str) -> bool {
    let (ns, sa) = value.split_once('/').unwrap_or((policy_ns, value));
    identity(principal).is_some_and(|id| id.namespace == ns && id.service_account == sa)
}

/// The string values a JWT claim holds at `path` (`request.auth.claims[a][b]`): a string, or
/// the string elements of a list. Envoy's metadata matcher is a string-or-list-of-string match
/// (`matcher.MetadataListValueMatcher` with `useExtendedJwt`), so numbers, booleans and
/// objects never match.
pub fn claim_strings<'a>(payload: &'a serde_json::Value, path: &[String]) -> Vec<&'a str> {
    let mut v = payload;
    for key in path {
        match v.get(key.as_str()) {
            Some(next) => v = next,
            None => return Vec::new(),
        }
    }
    match v {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(a) => a.iter().filter_map(|e| e.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// The claim path in a `request.auth.claims[...]` key, as pilot's
/// `extractNameInNestedBrackets` (`model/util.go`) reads it: `[a][b]` is `a` then `b`; a
/// bracket that does not nest cleanly makes the whole inside one name (`[a[b]` is `a[b`).
pub fn claim_path(key_rest: &str) -> Option<Vec<String>> {
    let s = key_rest;
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let end = s[i..]
            .strip_prefix('[')
            .and_then(|t| t.find(['[', ']']).filter(|e| t.as_bytes()[*e] == b']'));
        match end {
            Some(e) => {
                out.push(s[i + 1..i + 1 + e].to_string());
                i += e + 2;
            }
            None => {
                let inner = s.strip_prefix('[')?.strip_suffix(']')?;
                return Some(vec![inner.to_string()]);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // pilot/pkg/security/authz/matcher/string.go, StringMatcherWithPrefix: "*" is ".+".
    #[test]
    fn star_needs_a_value_but_header_star_is_presence() {
        assert!(!envoy_str("*", ""));
        assert!(envoy_str("*", "x"));
        assert!(envoy_str("a*b", "a*b") && !envoy_str("a*b", "axb"));
        // matcher/header.go, HeaderMatcher: "*" is present_match.
        assert!(header("*", ""));
        assert!(host("*.EXAMPLE.com", "api.example.COM"));
        assert!(!header("Abc", "abc"));
    }

    // pilot/pkg/security/authz/model/util.go, extractNameInNestedBrackets.
    #[test]
    fn claim_paths_nest() {
        assert_eq!(claim_path("[a][b]").unwrap(), vec!["a", "b"]);
        assert_eq!(claim_path("[a.b]").unwrap(), vec!["a.b"]);
        assert_eq!(claim_path("[a[b]").unwrap(), vec!["a[b"]);
        assert!(claim_path("a").is_none());
    }

    // model/generator.go, srcNamespaceGenerator and serviceAccountRegex.
    #[test]
    fn namespace_and_service_account_regexes() {
        let p = "cluster.local/ns/prod-eu/sa/web";
        assert!(envoy_namespace("prod-*", p));
        assert!(envoy_namespace("p*u", p));
        assert!(!envoy_namespace("prod", p));
        assert!(envoy_service_account("web", "prod-eu", p));
        assert!(envoy_service_account("prod-eu/web", "x", p));
        assert!(!envoy_service_account("we", "prod-eu", p));
        assert!(!envoy_service_account(
            "prod-eu/web",
            "x",
            "cluster.local/ns/prod-eu/sa/web-2"
        ));
        assert!(ztunnel_service_account("web", "prod-eu", p));
        assert!(glob("*/ns/*/*", "spiffe://td/ns/a/sa/b"));
        assert!(!glob("a*c", "abd"));
    }

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_in("10.1.0.0/16", ip("10.1.200.3")));
        assert!(!ip_in("10.1.0.0/16", ip("10.2.0.3")));
        assert!(ip_in("0.0.0.0/0", ip("1.2.3.4")));
        assert!(ip_in("::/0", ip("::1")));
        assert!(!ip_in("10.0.0.0/x", ip("10.0.0.1")));
        assert!(ip_in("10.0.0.1", ip("10.0.0.1")));
    }

    // matcher/metadata.go, MetadataListValueMatcher with useExtendedJwt: string or list.
    #[test]
    fn claims_are_strings_or_lists_of_strings() {
        let v: serde_json::Value =
            serde_json::json!({"groups": ["a", 1, "b"], "n": 3, "o": {"k": "v"}});
        assert_eq!(claim_strings(&v, &["groups".into()]), vec!["a", "b"]);
        assert!(claim_strings(&v, &["n".into()]).is_empty());
        assert_eq!(claim_strings(&v, &["o".into(), "k".into()]), vec!["v"]);
    }
}
