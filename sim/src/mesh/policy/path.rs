//! Request paths as Istio's Envoy sees them: the `BASE` normalization Istio turns on by default
//! (`pilot/pkg/networking/core/listener_builder.go`: `normalize_path: true`,
//! `merge_slashes: false`, `path_with_escaped_slashes_action: KEEP_UNCHANGED`), and the path
//! matchers policies compile to.

use std::fmt;

/// Why Envoy refuses a request path before any filter runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRejected {
    /// The status Envoy answers with.
    pub status: u16,
    /// Envoy's response code details.
    pub details: &'static str,
}

impl fmt::Display for PathRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.details)
    }
}

impl std::error::Error for PathRejected {}

/// Normalizes a request target (`:path`, query included) as Envoy's HCM does with Istio's
/// default `BASE` normalization, before policy and routing; the result is also what is
/// forwarded. Envoy: `ConnectionManagerUtility::maybeNormalizePath` and
/// `PathUtil::canonicalPath` (`source/common/http/path_utility.cc`), which runs Chromium's
/// `url::CanonicalizePath` (`url_canon_path.cc`) over the part before `?`:
/// - `.` / `..` segments (also spelled `%2e`, any case) are removed, never above the root;
/// - `\` becomes `/`; repeated slashes are kept (no merge in `BASE`);
/// - `%XX` of an unreserved character (`A-Za-z0-9-._~`) is decoded; other escapes, `%2F`
///   included, are kept as written; a `%` not followed by two hex digits is kept;
/// - control characters, space, `"`, `<`, `>`, `` ` ``, `{`, `}`, DEL and bytes >= 0x80 are
///   percent-encoded (upper-case hex).
///
/// Rejected: a path with `#` (400, Envoy's default since 1.19: `http_reject_path_with_fragment`),
/// NUL or `%00` (400, canonicalization fails), and a target not starting with `/` (404: Envoy
/// serves only relative paths; `*` and absolute-form are not modeled).
pub fn normalize_path(target: &str) -> Result<String, PathRejected> {
    if target.contains('#') {
        return Err(PathRejected {
            status: 400,
            details: "invalid_url",
        });
    }
    if !target.starts_with('/') {
        return Err(PathRejected {
            status: 404,
            details: "absolute_path_rejected",
        });
    }
    let (path, query) = match target.find('?') {
        Some(q) => target.split_at(q),
        None => (target, ""),
    };
    let mut out = canonicalize(path.as_bytes()).ok_or(PathRejected {
        status: 400,
        details: "path_normalization_failed",
    })?;
    out.push_str(query);
    Ok(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn must_escape(b: u8) -> bool {
    !(0x20..0x7f).contains(&b) || matches!(b, b' ' | b'"' | b'<' | b'>' | b'`' | b'{' | b'}')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Length of a dot at `i` (`.` is 1, `%2e` is 3), as Chromium's `IsDot`.
fn dot_len(s: &[u8], i: usize) -> usize {
    match s.get(i..) {
        Some([b'.', ..]) => 1,
        Some([b'%', b'2', b'e' | b'E', ..]) => 3,
        _ => 0,
    }
}

fn is_slash(b: Option<&u8>) -> bool {
    matches!(b, Some(b'/' | b'\\'))
}

/// Drops the last segment of `out` (which ends in `/`), keeping the slash before it.
fn back_up(out: &mut Vec<u8>) {
    let mut i = out.len() - 1;
    if i == 0 {
        return;
    }
    i -= 1;
    while i > 0 && out[i] != b'/' {
        i -= 1;
    }
    out.truncate(i + 1);
}

fn canonicalize(s: &[u8]) -> Option<String> {
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let dl = dot_len(s, i);
        if dl > 0 && out.last() == Some(&b'/') {
            let after = i + dl;
            let dl2 = dot_len(s, after);
            if after == s.len() || is_slash(s.get(after)) {
                i = after + usize::from(after < s.len());
                continue;
            }
            if dl2 > 0 && (after + dl2 == s.len() || is_slash(s.get(after + dl2))) {
                back_up(&mut out);
                i = after + dl2 + usize::from(after + dl2 < s.len());
                continue;
            }
        }
        if dl > 0 {
            out.push(b'.');
            i += dl;
            continue;
        }
        match b {
            0 => return None,
            b'\\' => out.push(b'/'),
            b'%' => match (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    let v = h * 16 + l;
                    if v == 0 {
                        return None;
                    }
                    if is_unreserved(v) {
                        out.push(v);
                    } else {
                        out.extend_from_slice(&s[i..i + 3]);
                    }
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b if must_escape(b) => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
            b => out.push(b),
        }
        i += 1;
    }
    if out.first() != Some(&b'/') {
        out.insert(0, b'/');
    }
    String::from_utf8(out).ok()
}

/// The path part Envoy's path matchers see: query and fragment removed
/// (`PathUtil::removeQueryAndFragment`, used by `PathMatcher` and the URI template matcher).
pub fn without_query(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// Whether a policy path holds a template (`pkg/config/security/security.go`,
/// `ContainsPathTemplate`).
pub fn is_template(p: &str) -> bool {
    p.contains("{*}") || p.contains("{**}")
}

/// The characters a template wildcard may consume: Envoy's `kLiteral` in
/// `source/extensions/path/uri_template_lib/uri_template_internal.cc`.
fn literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@=".contains(c)
}

/// A policy path with `{*}` / `{**}`, as Envoy's `uri_template` matcher evaluates the template
/// Istio builds (`pilot/pkg/security/authz/matcher/template.go`: `{*}` → `*`, `{**}` → `**`):
/// `*` is one or more literal characters within a segment, `**` zero or more literal
/// characters or `/`; everything else is literal; query and fragment are ignored.
pub fn template_match(template: &str, path: &str) -> bool {
    let t = template.replace("{**}", "\u{1}").replace("{*}", "\u{2}");
    let t = t.replace("**", "\u{1}").replace('*', "\u{2}");
    let t: Vec<char> = t.chars().collect();
    let p: Vec<char> = without_query(path).chars().collect();
    tmatch(&t, &p)
}

fn tmatch(t: &[char], p: &[char]) -> bool {
    match t.first() {
        None => p.is_empty(),
        Some('\u{1}') => {
            let run = p
                .iter()
                .take_while(|c| **c == '/' || literal_char(**c))
                .count();
            (0..=run).rev().any(|n| tmatch(&t[1..], &p[n..]))
        }
        Some('\u{2}') => {
            let run = p.iter().take_while(|c| literal_char(**c)).count();
            (1..=run).rev().any(|n| tmatch(&t[1..], &p[n..]))
        }
        Some(c) => p.first() == Some(c) && tmatch(&t[1..], &p[1..]),
    }
}

/// A `paths` / `notPaths` value against a request path: a template as [`template_match`],
/// otherwise Istio's string match (`matcher.PathMatcher`) on the path without its query.
pub fn path_match(pattern: &str, path: &str) -> bool {
    if is_template(pattern) {
        template_match(pattern, path)
    } else {
        super::matchers::envoy_str(pattern, without_query(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> String {
        normalize_path(p).unwrap()
    }

    // Envoy test/common/http/path_utility_test.cc (NormalizeValidPaths) cases, BASE mode.
    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(n("/a/b/../c"), "/a/c");
        assert_eq!(n("/a/./b"), "/a/b");
        assert_eq!(n("/../../a"), "/a");
        assert_eq!(n("/a/.."), "/");
        assert_eq!(n("/a/b/."), "/a/b/");
        assert_eq!(n("/a/%2e%2E/b"), "/b");
        assert_eq!(n("/a/..b/.c"), "/a/..b/.c");
        assert_eq!(n("/admin/..;/x"), "/admin/..;/x");
    }

    // listener_builder.go: BASE keeps merge_slashes off and escaped slashes unchanged.
    #[test]
    fn slashes_backslashes_and_escapes() {
        assert_eq!(n("//a//b"), "//a//b");
        assert_eq!(n("/a\\b\\..\\c"), "/a/c");
        assert_eq!(n("/a%2Fb%2f"), "/a%2Fb%2f");
        assert_eq!(n("/%61dmin"), "/admin");
        assert_eq!(n("/a%7e%20b"), "/a~%20b");
        assert_eq!(n("/a b\""), "/a%20b%22");
        assert_eq!(n("/100%"), "/100%");
        assert_eq!(n("/é"), "/%C3%A9");
        assert_eq!(n("/a/../b?x=/../y"), "/b?x=/../y");
        assert_eq!(n("//a/../b"), "//b");
    }

    #[test]
    fn rejected_paths() {
        assert_eq!(normalize_path("/a#f").unwrap_err().status, 400);
        assert_eq!(normalize_path("/a%00b").unwrap_err().status, 400);
        assert_eq!(normalize_path("/a\0b").unwrap_err().status, 400);
        assert_eq!(normalize_path("a/b").unwrap_err().status, 404);
    }

    // pilot/pkg/security/authz/matcher/template.go + Envoy uri_template_internal.cc.
    #[test]
    fn templates() {
        assert!(path_match("/foo/{*}/bar", "/foo/x/bar"));
        assert!(!path_match("/foo/{*}/bar", "/foo/x/y/bar"));
        assert!(!path_match("/foo/{*}/bar", "/foo//bar"));
        assert!(path_match("/foo/{**}", "/foo/a/b/c"));
        assert!(path_match("/foo/{**}", "/foo/"));
        assert!(!path_match("/foo/{**}", "/foo"));
        assert!(path_match("/foo/{**}/x.txt", "/foo/a/b/x.txt"));
        assert!(path_match("/{*}/x", "/a/x?q=1"));
        assert!(!path_match("/{*}", "/a*"));
        assert!(path_match("/api/*", "/api/v1?x"));
        assert!(path_match("/api", "/api?x"));
    }
}
