//! A plan as people read it: `plan.md` (tables, for a review or a CI summary), `plan.json`
//! (everything, for tools) and `plan.html` (the tables with charts).

use std::fmt::Write as _;

use scenario::costmodel::{CostModel, Param, ProxyModel};

use reports::render::{BandPanel, ChartData, esc, page_head, svg_of};

use crate::Plan;
use crate::project::{Band, Cost, ModePlan, NodePlan};

/// Writes plan.json, plan.md and plan.html into `dir`; returns the files written.
pub fn write_all(p: &Plan, dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let json = serde_json::to_string_pretty(p).map_err(std::io::Error::other)?;
    let md = markdown(p);
    let html = html(p, &md).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    for (name, text) in [("plan.json", json), ("plan.md", md), ("plan.html", html)] {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        out.push(path);
    }
    Ok(out)
}

/// The totals table alone (what `meshsim plan` prints).
pub fn totals(p: &Plan) -> String {
    let md = markdown(p);
    let start = md.find("## Totals").unwrap_or(0);
    let end = md[start..]
        .find("\n## ")
        .map_or(md.len(), |i| start + i + 1);
    md[start..end].to_string()
}

/// The page: charts of each mode's band, then the Markdown's sections as HTML.
pub fn html(p: &Plan, md: &str) -> Result<String, reports::RenderError> {
    let bars = |f: &dyn Fn(&ModePlan) -> Band| -> Vec<(String, f64, f64, f64)> {
        p.modes
            .iter()
            .map(|m| {
                let b = f(m);
                (m.label(), b.low, b.mid, b.high)
            })
            .collect()
    };
    let chart = ChartData::Bands {
        title: format!(
            "{}: projected mesh cost per mode (whiskers: the model's low–high)",
            p.inventory
        ),
        panels: vec![
            BandPanel {
                title: "data plane + istiod, average load".into(),
                y_desc: "vCPU".into(),
                bars: bars(&|m| m.total.vcpu),
            },
            BandPanel {
                title: "data plane + istiod".into(),
                y_desc: "MiB".into(),
                bars: bars(&|m| m.total.mib),
            },
            BandPanel {
                title: "requested (sized for the peak)".into(),
                y_desc: "vCPU".into(),
                bars: bars(&|m| m.requested.vcpu),
            },
        ],
    };
    let svg = svg_of("plan-modes", &chart)?;
    let mut h = page_head(&format!("meshsim plan: {}", p.inventory));
    let mut lines = md.lines().peekable();
    let mut charted = false;
    while let Some(line) = lines.next() {
        if let Some(t) = line.strip_prefix("# ") {
            let _ = writeln!(h, "<h1>{}</h1>", esc(t));
        } else if let Some(t) = line.strip_prefix("## ") {
            if !charted {
                let _ = writeln!(
                    h,
                    "<figure>{}</figure>",
                    svg.trim_start_matches(|c| c != '<')
                );
                charted = true;
            }
            let _ = writeln!(h, "<h2>{}</h2>", esc(t));
        } else if line.starts_with('|') {
            let cells = |l: &str| -> Vec<String> {
                l.trim()
                    .trim_matches('|')
                    .split(" | ")
                    .map(|c| inline(c.trim()))
                    .collect()
            };
            h.push_str("<table>\n<thead><tr>");
            for c in cells(line) {
                let _ = write!(h, "<th>{c}</th>");
            }
            h.push_str("</tr></thead>\n<tbody>\n");
            lines.next_if(|l| l.starts_with("|--") || l.starts_with("|:-"));
            while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
                h.push_str("<tr>");
                for c in cells(row) {
                    let _ = write!(h, "<td>{c}</td>");
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</tbody></table>\n");
        } else if !line.trim().is_empty() {
            let _ = writeln!(h, "<p>{}</p>", inline(line));
        }
    }
    h.push_str("</main>\n</body>\n</html>\n");
    Ok(h)
}

/// Escapes a Markdown fragment of this module's own, keeping its `**bold**`.
fn inline(s: &str) -> String {
    let e = esc(&s.replace("\\|", "|"));
    let mut out = String::new();
    for (i, part) in e.split("**").enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<b>{part}</b>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Rows of the node table in Markdown and HTML (the JSON has every node).
pub const NODES_SHOWN: usize = 10;

/// `1.23 (1.01–1.57)`, or just the value when the band is a point.
pub fn band(b: Band, digits: usize) -> String {
    let f = |v: f64| format!("{v:.digits$}");
    if f(b.low) == f(b.mid) && f(b.high) == f(b.mid) {
        f(b.mid)
    } else {
        format!("{} ({}–{})", f(b.mid), f(b.low), f(b.high))
    }
}

fn vcpu(c: &Cost) -> String {
    band(c.vcpu, 2)
}

fn mib(c: &Cost) -> String {
    band(c.mib, 0)
}

/// The plan in Markdown.
pub fn markdown(p: &Plan) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# Capacity plan: {}\n", p.inventory);
    let _ = writeln!(
        m,
        "{} nodes, {} pods, {} services; meshed namespaces: {}. Costs: {}.\n",
        p.nodes,
        p.pods,
        p.services,
        if p.meshed_namespaces.is_empty() {
            "none".to_string()
        } else {
            p.meshed_namespaces.join(", ")
        },
        p.costs
    );
    m.push_str(
        "Every figure is **projected** with the cost model below (modeled, not measured): the \
         middle value, with the range the model's low and high parameters give in brackets. \
         vCPU and MiB are at the inventory's average traffic; requests are sized for its peak.\n\n",
    );
    m.push_str("## Totals\n\n");
    m.push_str(
        "| mode | sidecars | ztunnels | waypoint replicas | data plane vCPU | data plane MiB | istiod vCPU | istiod MiB | total vCPU | total MiB | requested vCPU | requested MiB |\n",
    );
    m.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for mp in &p.modes {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            mp.label(),
            mp.sidecars,
            mp.ztunnels,
            mp.waypoint_replicas,
            vcpu(&mp.data_plane),
            mib(&mp.data_plane),
            vcpu(&mp.control_plane),
            mib(&mp.control_plane),
            vcpu(&mp.total),
            mib(&mp.total),
            vcpu(&mp.requested),
            mib(&mp.requested),
        );
    }
    m.push('\n');
    for mp in &p.modes {
        mode_section(&mut m, mp);
    }
    model_section(&mut m, &p.model);
    m
}

fn mode_section(m: &mut String, mp: &ModePlan) {
    let _ = writeln!(m, "## {}\n", mp.label());
    if !mp.by_kind.is_empty() {
        m.push_str("| proxies | vCPU | MiB |\n|---|---:|---:|\n");
        for (kind, c) in &mp.by_kind {
            let _ = writeln!(m, "| all {kind}s | {} | {} |", vcpu(c), mib(c));
        }
        let _ = writeln!(
            m,
            "| istiod | {} | {} |\n",
            vcpu(&mp.control_plane),
            mib(&mp.control_plane)
        );
    }
    if let Some(z) = &mp.ztunnel_request {
        let _ = writeln!(
            m,
            "**ztunnel DaemonSet request**: {} vCPU and {} MiB on each of {} nodes, the peak of \
             the hottest node ({}). One size for every node over-provisions the others by {} vCPU \
             and {} MiB in all (istio/ztunnel#1288).\n",
            vcpu(&z.request),
            mib(&z.request),
            z.nodes,
            z.hottest_node,
            vcpu(&z.over_provisioned),
            mib(&z.over_provisioned),
        );
    }
    if !mp.waypoints.is_empty() {
        m.push_str(
            "| waypoint | services | rps | peak rps | replicas (high) | concurrency | CPU limit | vCPU | MiB |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for w in &mp.waypoints {
            let _ = writeln!(
                m,
                "| {} | {} | {:.0} | {:.0} | {} ({}) | {} | {} | {} | {} |",
                w.waypoint,
                short_list(&w.services, 4),
                w.rps,
                w.peak_rps,
                w.replicas,
                w.replicas_high,
                w.concurrency,
                w.cpu_limit,
                vcpu(&w.cost),
                mib(&w.cost),
            );
        }
        m.push_str(
            "\nReplicas: the peak's CPU at 70% of min(concurrency, CPU limit) per replica (30% headroom); in brackets, at the model's high parameters. Each replica requests its share of the peak.\n\n",
        );
    }
    if !mp.sidecar_requests.is_empty() {
        let mut rs: Vec<_> = mp.sidecar_requests.iter().collect();
        rs.sort_by(|a, b| b.peak.vcpu.mid.total_cmp(&a.peak.vcpu.mid));
        m.push_str(
            "| pod template | replicas | sidecar request: vCPU | MiB |\n|---|---:|---:|---:|\n",
        );
        for r in rs.iter().take(NODES_SHOWN) {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} |",
                r.workload,
                r.replicas,
                vcpu(&r.peak),
                mib(&r.peak)
            );
        }
        if rs.len() > NODES_SHOWN {
            let _ = writeln!(m, "\n…and {} more in plan.json.", rs.len() - NODES_SHOWN);
        }
        m.push('\n');
    }
    nodes_table(m, &mp.nodes);
    m.push_str(
        "| namespace | pods | meshed | sidecars vCPU | sidecars MiB | ztunnel share vCPU | ztunnel share MiB | waypoints vCPU | waypoints MiB | total vCPU | total MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for n in &mp.namespaces {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            n.namespace,
            n.pods,
            n.meshed_pods,
            vcpu(&n.sidecars),
            mib(&n.sidecars),
            vcpu(&n.ztunnel_share),
            mib(&n.ztunnel_share),
            vcpu(&n.waypoints),
            mib(&n.waypoints),
            vcpu(&n.total),
            mib(&n.total),
        );
    }
    m.push_str(
        "\nA namespace's ztunnel share is derived: each node's ztunnel split over its ambient pods, CPU by their share of its traffic, memory by count.\n\n",
    );
}

/// The hottest nodes, and the spread over all of them.
fn nodes_table(m: &mut String, nodes: &[NodePlan]) {
    if nodes.is_empty() {
        return;
    }
    let mut ns: Vec<&NodePlan> = nodes.iter().collect();
    ns.sort_by(|a, b| {
        b.total
            .vcpu
            .mid
            .total_cmp(&a.total.vcpu.mid)
            .then(a.node.cmp(&b.node))
    });
    let mids: Vec<f64> = ns.iter().map(|n| n.total.vcpu.mid).collect();
    let median = mids[mids.len() / 2];
    let _ = writeln!(
        m,
        "Per node (mesh only; waypoints are placed by the scheduler and counted per namespace): \
         {:.2} vCPU on the busiest, {median:.2} median, {:.2} on the least busy.\n",
        mids[0],
        mids[mids.len() - 1]
    );
    m.push_str("| node | pods | meshed | ztunnel vCPU | ztunnel MiB | sidecars vCPU | sidecars MiB | total vCPU | total MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for n in ns.iter().take(NODES_SHOWN) {
        let z = n.ztunnel.unwrap_or_default();
        let dash = |s: String| if n.ztunnel.is_some() { s } else { "–".into() };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            n.node,
            n.pods,
            n.meshed_pods,
            dash(vcpu(&z)),
            dash(mib(&z)),
            vcpu(&n.sidecars),
            mib(&n.sidecars),
            vcpu(&n.total),
            mib(&n.total),
        );
    }
    if ns.len() > NODES_SHOWN {
        let _ = writeln!(
            m,
            "\n…and {} more nodes in plan.json.",
            ns.len() - NODES_SHOWN
        );
    }
    m.push('\n');
}

/// The first `n` names, and how many more.
fn short_list(names: &[String], n: usize) -> String {
    if names.len() <= n {
        names.join(", ")
    } else {
        format!("{}, … ({} more)", names[..n].join(", "), names.len() - n)
    }
}

/// Every parameter with its value, range and source.
pub fn model_rows(model: &CostModel) -> Vec<[String; 4]> {
    let mut rows = Vec::new();
    fn row<T: std::fmt::Display + Copy>(rows: &mut Vec<[String; 4]>, name: String, p: &Param<T>) {
        let range = match (p.low, p.high) {
            (None, None) => String::new(),
            (l, h) => format!("{}–{}", l.unwrap_or(p.value), h.unwrap_or(p.value)),
        };
        let source = if p.source.is_empty() {
            "not given (0 unless set)".to_string()
        } else {
            p.source.clone()
        };
        rows.push([name, p.value.to_string(), range, source]);
    }
    let proxy = |rows: &mut Vec<[String; 4]>, kind: &str, m: &ProxyModel| {
        row(rows, format!("{kind} cpuIdle (vCPU)"), &m.cpu_idle);
        row(rows, format!("{kind} cpuPerRequest"), &m.cpu_per_request);
        row(rows, format!("{kind} cpuPerKiB"), &m.cpu_per_kib);
        row(
            rows,
            format!("{kind} cpuPerConnection"),
            &m.cpu_per_connection,
        );
        row(rows, format!("{kind} memoryBase"), &m.memory_base);
        row(
            rows,
            format!("{kind} memoryPerConnection"),
            &m.memory_per_connection,
        );
        row(
            rows,
            format!("{kind} memoryPerService"),
            &m.memory_per_service,
        );
        row(
            rows,
            format!("{kind} memoryPerEndpoint"),
            &m.memory_per_endpoint,
        );
        row(
            rows,
            format!("{kind} memoryPerWorkload"),
            &m.memory_per_workload,
        );
    };
    proxy(&mut rows, "sidecar", &model.sidecar);
    proxy(&mut rows, "ztunnel", &model.ztunnel);
    proxy(&mut rows, "waypoint", &model.waypoint);
    let i = &model.istiod;
    row(&mut rows, "istiod cpuBase (vCPU)".into(), &i.cpu_base);
    row(
        &mut rows,
        "istiod cpuPerProxy (vCPU)".into(),
        &i.cpu_per_proxy,
    );
    row(&mut rows, "istiod memoryBase".into(), &i.memory_base);
    row(
        &mut rows,
        "istiod memoryPerProxy".into(),
        &i.memory_per_proxy,
    );
    row(
        &mut rows,
        "istiod memoryPerProxyPerService".into(),
        &i.memory_per_proxy_per_service,
    );
    rows
}

fn model_section(m: &mut String, model: &CostModel) {
    m.push_str("## The cost model\n\n| parameter | value | range | source |\n|---|---:|---|---|\n");
    for [name, value, range, source] in model_rows(model) {
        let _ = writeln!(
            m,
            "| {name} | {value} | {range} | {} |",
            source.replace('|', "\\|")
        );
    }
}
