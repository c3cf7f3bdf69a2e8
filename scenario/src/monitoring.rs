//! The user's monitoring, read from where they keep it: Prometheus rule files (alerting and
//! recording rules, plain or as a `PrometheusRule` object) and Grafana dashboard JSON. Every
//! expression is parsed as PromQL here, so a typo fails at load with its file and line, and
//! the selectors in it are listed for the monitoring check to test against what the proxies
//! really emit (`reporter="ztunnel"` matches nothing: ztunnel reports `source`/`destination`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use serde::{Deserialize, Serialize};

use crate::yaml::{Diagnostic, LocIndex, parse_doc, split_documents};

/// A range for Grafana's interval variables (`$__rate_interval`, `$__interval`, `$__range`):
/// long enough to hold a stage's probes at a 1 s scrape interval.
pub const GRAFANA_INTERVAL: &str = "1m";

/// One expression to evaluate at every stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// The file as the scenario names it.
    pub file: String,
    pub line: usize,
    /// `alert HighErrorRate (group istio)`, `record …`, or `panel "Requests" A`.
    pub name: String,
    /// The expression evaluated: as written, with a dashboard's variables filled in.
    pub expr: String,
    /// What was changed to evaluate it (dashboard variables), said in the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The series selectors in it, each checked on its own.
    pub selectors: Vec<Selector>,
}

/// One series selector of an expression, e.g. `istio_requests_total{reporter="destination"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Selector {
    /// As PromQL, without offset or `@`.
    pub text: String,
    pub metric: Option<String>,
    pub matchers: Vec<LabelMatcher>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LabelMatcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

impl LabelMatcher {
    /// Whether a series whose `label` is `value` passes this matcher. PromQL anchors regex
    /// matchers at both ends; a regex Prometheus would refuse admits nothing.
    pub fn admits(&self, value: &str) -> bool {
        let re =
            || regex::Regex::new(&format!("^(?:{})$", self.value)).is_ok_and(|r| r.is_match(value));
        match self.op.as_str() {
            "=" => value == self.value,
            "!=" => value != self.value,
            "=~" => re(),
            "!~" => !re(),
            _ => false,
        }
    }
}

impl Selector {
    /// The selector without its matchers on `labels`, with the metric name kept: what asks
    /// which values a label really has, or whether the series a filter picks from exist.
    pub fn without(&self, labels: &[&str]) -> String {
        let kept: Vec<String> = self
            .matchers
            .iter()
            .filter(|m| !labels.contains(&m.label.as_str()))
            .map(|m| format!("{}{}{:?}", m.label, m.op, m.value))
            .collect();
        match (&self.metric, kept.is_empty()) {
            (Some(m), true) => m.clone(),
            (Some(m), false) => format!("{m}{{{}}}", kept.join(",")),
            (None, _) => format!("{{{}}}", kept.join(",")),
        }
    }
}

/// A Prometheus rule file (`promtool check rules` format).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

/// A `PrometheusRule` object (prometheus-operator), the form rules often live in on a cluster.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PrometheusRule {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[allow(dead_code)]
    #[serde(default)]
    metadata: serde::de::IgnoredAny,
    spec: RuleFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    interval: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    limit: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    query_offset: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    expr: String,
    #[serde(default, rename = "for")]
    #[allow(dead_code)]
    for_: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: BTreeMap<String, String>,
}

/// Reads a rule file: each document a rule file or a `PrometheusRule`.
pub fn read_rules(path: &Path, named: &str, text: &str) -> (Vec<Query>, Vec<Diagnostic>) {
    let mut queries = Vec::new();
    let mut problems = Vec::new();
    for doc in split_documents(text) {
        let index = Arc::new(LocIndex::build(doc.text, doc.line_offset));
        let (file, prefix) = if index.has("kind") {
            match parse_doc::<PrometheusRule>(path, &doc, &index) {
                Ok(r) => (r.spec, "spec."),
                Err(d) => {
                    problems.push(d);
                    continue;
                }
            }
        } else {
            match parse_doc::<RuleFile>(path, &doc, &index) {
                Ok(r) => (r, ""),
                Err(d) => {
                    problems.push(d);
                    continue;
                }
            }
        };
        for (g, group) in file.groups.iter().enumerate() {
            for (r, rule) in group.rules.iter().enumerate() {
                let at = format!("{prefix}groups[{g}].rules[{r}]");
                let diag = |field: &str, message: String| {
                    let p = format!("{at}{field}");
                    let l = index.value_loc(&p);
                    Diagnostic {
                        file: path.to_path_buf(),
                        line: l.line,
                        column: l.column,
                        path: p,
                        message,
                    }
                };
                let name = match (&rule.alert, &rule.record) {
                    (Some(a), None) => format!("alert {a} (group {})", group.name),
                    (None, Some(r)) => format!("record {r} (group {})", group.name),
                    _ => {
                        problems.push(diag(
                            "",
                            "a rule has exactly one of `alert` and `record`".into(),
                        ));
                        continue;
                    }
                };
                match query(named, &rule.expr, name, None) {
                    Ok(mut q) => {
                        q.line = index.value_loc(&format!("{at}.expr")).line;
                        queries.push(q);
                    }
                    Err(e) => problems.push(diag(".expr", e)),
                }
            }
        }
    }
    (queries, problems)
}

/// Reads a Grafana dashboard's Prometheus queries (`panels[].targets[].expr`, rows and
/// collapsed rows included). Dashboard variables are read as "any value", and said so.
pub fn read_dashboard(path: &Path, named: &str, text: &str) -> (Vec<Query>, Vec<Diagnostic>) {
    let at = |line: usize, column: usize, p: &str, message: String| Diagnostic {
        file: path.to_path_buf(),
        line,
        column,
        path: p.to_string(),
        message,
    };
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                Vec::new(),
                vec![at(
                    e.line(),
                    e.column(),
                    "",
                    format!("not a Grafana dashboard's JSON: {e}"),
                )],
            );
        }
    };
    // Dashboards exported for sharing wrap the model in `{"dashboard": …}`.
    let (v, prefix) = match v.get("dashboard") {
        Some(d) if d.get("panels").is_some() || d.get("rows").is_some() => (d, "dashboard."),
        _ => (&v, ""),
    };
    if v.get("panels").is_none() && v.get("rows").is_none() {
        return (
            Vec::new(),
            vec![at(
                1,
                1,
                "",
                "not a Grafana dashboard: it has neither `panels` nor `rows`; export it with \
                 Share → Export → Save to file"
                    .into(),
            )],
        );
    }
    // JSON is YAML: the same index places a field path on its line.
    let index = LocIndex::build(text, 0);
    let mut panels = Vec::new();
    collect_panels(v, prefix, &mut panels);
    let mut queries = Vec::new();
    let mut problems = Vec::new();
    for (p, panel) in panels {
        let title = panel.get("title").and_then(|t| t.as_str()).unwrap_or("");
        let Some(targets) = panel.get("targets").and_then(|t| t.as_array()) else {
            continue;
        };
        for (t, target) in targets.iter().enumerate() {
            let Some(expr) = target.get("expr").and_then(|e| e.as_str()) else {
                continue;
            };
            if expr.trim().is_empty() {
                continue;
            }
            let ref_id = target.get("refId").and_then(|r| r.as_str()).unwrap_or("");
            let field = format!("{p}.targets[{t}].expr");
            let l = index.value_loc(&field);
            let (filled, vars) = fill_variables(expr);
            let note = (!vars.is_empty()).then(|| {
                format!(
                    "dashboard variables read as any value: {}",
                    vars.iter()
                        .map(|v| format!("${v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
            match query(named, &filled, format!("panel {title:?} {ref_id}"), note) {
                Ok(mut q) => {
                    q.line = l.line;
                    queries.push(q);
                }
                Err(e) => problems.push(at(l.line, l.column, &field, e)),
            }
        }
    }
    (queries, problems)
}

/// Every panel with its field path, rows' and collapsed rows' nested panels included.
fn collect_panels<'a>(
    v: &'a serde_json::Value,
    prefix: &str,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) {
    for key in ["panels", "rows"] {
        let Some(list) = v.get(key).and_then(|p| p.as_array()) else {
            continue;
        };
        for (i, p) in list.iter().enumerate() {
            let path = format!("{prefix}{key}[{i}]");
            out.push((path.clone(), p));
            collect_panels(p, &format!("{path}."), out);
        }
    }
}

/// Grafana's `$var`, `${var}`, `${var:fmt}` and `[[var]]`: interval variables become
/// [`GRAFANA_INTERVAL`]; any other variable inside a label value becomes `.*`, with the
/// matcher made a regex one so it matches any value. Returns the names replaced.
fn fill_variables(expr: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(expr.len());
    let mut vars = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' {
            // A label value: it may hold a variable, which widens its matcher to a regex.
            let end = (i + 1..chars.len())
                .find(|&k| chars[k] == '"' && chars[k - 1] != '\\')
                .unwrap_or(chars.len());
            let inner: String = chars[i + 1..end].iter().collect();
            let (filled, found) = replace_vars(&inner, ".*");
            let t = out.trim_end();
            if !found.is_empty() && t.ends_with('=') {
                let not = t.ends_with("!=");
                out.truncate(t.len() - if not { 2 } else { 1 });
                out.push_str(if not { "!~" } else { "=~" });
            }
            vars.extend(found);
            out.push('"');
            out.push_str(&filled);
            out.push('"');
            i = end + 1;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    let (filled, found) = replace_vars(&out, GRAFANA_INTERVAL);
    vars.extend(found);
    vars.sort();
    vars.dedup();
    (filled, vars)
}

/// Replaces each Grafana variable in `s`: interval ones with [`GRAFANA_INTERVAL`], the rest
/// with `other`.
fn replace_vars(s: &str, other: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(s.len());
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find(['$', '[']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let (name, used) = if let Some(t) = tail.strip_prefix("${") {
            match t.find('}') {
                Some(end) => (
                    t[..end].split(':').next().unwrap_or("").to_string(),
                    end + 3,
                ),
                None => (String::new(), 0),
            }
        } else if let Some(t) = tail.strip_prefix("[[") {
            match t.find("]]") {
                Some(end) => (
                    t[..end].split(':').next().unwrap_or("").to_string(),
                    end + 4,
                ),
                None => (String::new(), 0),
            }
        } else if let Some(t) = tail.strip_prefix('$') {
            let n: String = t
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let len = n.len() + 1;
            (n, len)
        } else {
            (String::new(), 0)
        };
        if name.is_empty() || used == 0 {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
            continue;
        }
        let interval = matches!(
            name.as_str(),
            "__rate_interval" | "__interval" | "__range" | "interval"
        );
        out.push_str(if interval { GRAFANA_INTERVAL } else { other });
        if !name.starts_with("__") {
            found.push(name);
        }
        rest = &tail[used..];
    }
    out.push_str(rest);
    (out, found)
}

/// Parses `expr` and lists its selectors.
fn query(file: &str, expr: &str, name: String, note: Option<String>) -> Result<Query, String> {
    let parsed = parser::parse(expr).map_err(|e| {
        format!(
            "not valid PromQL ({}): {}",
            e.trim(),
            expr.split_whitespace().collect::<Vec<_>>().join(" ")
        )
    })?;
    let mut selectors = Vec::new();
    walk(&parsed, &mut selectors);
    selectors.sort();
    selectors.dedup();
    Ok(Query {
        file: file.to_string(),
        line: 0,
        name,
        expr: expr.trim().to_string(),
        note,
        selectors,
    })
}

fn walk(e: &Expr, out: &mut Vec<Selector>) {
    match e {
        Expr::Aggregate(a) => {
            walk(&a.expr, out);
            if let Some(p) = &a.param {
                walk(p, out);
            }
        }
        Expr::Unary(u) => walk(&u.expr, out),
        Expr::Binary(b) => {
            walk(&b.lhs, out);
            walk(&b.rhs, out);
        }
        Expr::Paren(p) => walk(&p.expr, out),
        Expr::Subquery(s) => walk(&s.expr, out),
        Expr::VectorSelector(v) => out.push(selector(v)),
        Expr::MatrixSelector(m) => out.push(selector(&m.vs)),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn selector(v: &VectorSelector) -> Selector {
    let mut metric = v.name.clone();
    let mut matchers = Vec::new();
    for m in &v.matchers.matchers {
        let op = match m.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Re(_) => "=~",
            MatchOp::NotRe(_) => "!~",
        };
        if m.name == "__name__" && op == "=" {
            metric = Some(m.value.clone());
            continue;
        }
        matchers.push(LabelMatcher {
            label: m.name.clone(),
            op: op.to_string(),
            value: m.value.clone(),
        });
    }
    let plain = VectorSelector {
        offset: None,
        at: None,
        ..v.clone()
    };
    Selector {
        text: plain.to_string(),
        metric,
        matchers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> (Vec<Query>, Vec<Diagnostic>) {
        read_rules(Path::new("r.yaml"), "r.yaml", text)
    }

    #[test]
    fn reads_rule_files_and_their_selectors() {
        let (q, p) = rules(
            "groups:\n- name: istio\n  rules:\n  - record: svc:req:rate1m\n    expr: sum by (destination_service) (rate(istio_requests_total{reporter=\"destination\"}[1m]))\n  - alert: Plain\n    expr: |\n      sum(rate(istio_tcp_connections_opened_total{connection_security_policy!=\"mutual_tls\"}[1m])) > 0\n    for: 1m\n    labels: {severity: page}\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].name, "record svc:req:rate1m (group istio)");
        assert_eq!(q[0].line, 5);
        let s = &q[0].selectors[0];
        assert_eq!(s.metric.as_deref(), Some("istio_requests_total"));
        assert_eq!(s.matchers[0].label, "reporter");
        assert_eq!(s.text, "istio_requests_total{reporter=\"destination\"}");
        assert_eq!(s.without(&["reporter"]), "istio_requests_total");
        let m = |op: &str, v: &str| LabelMatcher {
            label: "reporter".into(),
            op: op.into(),
            value: v.into(),
        };
        assert!(m("=~", "destination|waypoint").admits("waypoint"));
        assert!(
            !m("=~", "dest").admits("destination"),
            "anchored, as PromQL"
        );
        assert!(m("!~", "dest").admits("destination"));
        assert!(m("!=", "ztunnel").admits("source") && !m("=", "ztunnel").admits("source"));
        assert_eq!(q[1].selectors[0].matchers[0].op, "!=");
    }

    #[test]
    fn reads_prometheus_rule_objects() {
        let (q, p) = rules(
            "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: istio\n  labels: {release: prom}\nspec:\n  groups:\n  - name: g\n    rules:\n    - alert: A\n      expr: up == 0\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(q[0].line, 11);
    }

    #[test]
    fn bad_promql_names_file_line_and_field() {
        let (_, p) =
            rules("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(rate(x[1m])\n");
        assert_eq!(p.len(), 1, "{p:?}");
        let d = &p[0];
        assert_eq!((d.line, d.path.as_str()), (5, "groups[0].rules[0].expr"));
        assert!(d.message.contains("not valid PromQL"), "{d}");
    }

    #[test]
    fn a_rule_without_alert_or_record_and_unknown_fields_are_errors() {
        let (_, p) = rules("groups:\n- name: g\n  rules:\n  - expr: up\n");
        assert!(
            p[0].message.contains("exactly one of `alert` and `record`"),
            "{p:?}"
        );
        let (_, p) = rules("groups:\n- name: g\n  rules:\n  - alert: A\n    expresion: up\n");
        assert!(p[0].message.contains("expresion"), "{p:?}");
        assert_eq!(p[0].line, 5);
    }

    #[test]
    fn reads_dashboards_with_rows_and_variables() {
        let text = r#"{
  "title": "Mesh",
  "panels": [
    {"type": "row", "title": "L4", "panels": [
      {"title": "Conns", "targets": [
        {"refId": "A", "expr": "sum(rate(istio_tcp_connections_opened_total{reporter=\"ztunnel\", destination_workload_namespace=\"$namespace\"}[$__rate_interval]))"}
      ]}
    ]},
    {"title": "Text", "type": "text"},
    {"title": "Bad", "targets": [{"refId": "B", "expr": "rate(x[5m]"}]}
  ]
}"#;
        let (q, p) = read_dashboard(Path::new("d.json"), "d.json", text);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].name, "panel \"Conns\" A");
        assert_eq!(q[0].line, 6);
        assert!(
            q[0].expr.contains("destination_workload_namespace=~\".*\""),
            "{}",
            q[0].expr
        );
        assert!(q[0].expr.contains("[1m]"), "{}", q[0].expr);
        assert_eq!(
            q[0].note.as_deref(),
            Some("dashboard variables read as any value: $namespace")
        );
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].line, p[0].path.as_str()),
            (10, "panels[2].targets[0].expr")
        );
    }

    #[test]
    fn a_file_that_is_not_a_dashboard_says_so() {
        let (_, p) = read_dashboard(Path::new("d.json"), "d.json", "{\"title\": 1}");
        assert!(
            p[0].message.contains("neither `panels` nor `rows`"),
            "{p:?}"
        );
        let (_, p) = read_dashboard(Path::new("d.json"), "d.json", "{\n  \"panels\": [,]\n}");
        assert_eq!(p[0].line, 2, "{p:?}");
    }

    #[test]
    fn variables_in_not_equal_matchers_become_negative_regexes() {
        let (s, v) = fill_variables("x{a!=\"$v\", b=\"${w:raw}\", c=~\"[[z]]\"}");
        assert_eq!(s, "x{a!~\".*\", b=~\".*\", c=~\".*\"}");
        assert_eq!(v, vec!["v", "w", "z"]);
    }
}
