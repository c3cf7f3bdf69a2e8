//! The deterministic benches' figures (gungraun, instructions under callgrind) read from their
//! output tree and compared exactly: instruction counts repeat on a noisy host, so any change
//! beyond a small threshold (1% by default) is a change, with no statistics.
//!
//! A tree is given as `DIR` (each bench's latest run, `callgrind.<id>.out`) or `DIR@NAME` (a
//! baseline saved with `--save-baseline=NAME`, `callgrind.<id>.out.base@NAME`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The default threshold for instruction counts, %.
pub const DEFAULT_THRESHOLD_PCT: f64 = 1.0;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read the bench output {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds no callgrind figures{}; run `cargo bench -p meshsim-sim --bench deterministic` first",
        .baseline.as_ref().map(|b| format!(" for baseline `{b}`")).unwrap_or_default()
    )]
    Empty {
        path: PathBuf,
        baseline: Option<String>,
    },
    #[error("{path}: no `events:` line with Ir before its totals; is it a callgrind output file?")]
    Format { path: PathBuf },
}

/// `DIR` or `DIR@NAME`, when DIR is a directory (a run.json is not).
pub fn is_bench_tree(spec: &str) -> bool {
    let dir = spec.split_once('@').map_or(spec, |(d, _)| d);
    // A run directory (as `meshsim run` writes it) is a run, not a bench tree.
    Path::new(dir).is_dir() && !Path::new(dir).join("run.json").exists()
}

/// Instructions per bench id (`group/bench.id`), from a tree.
pub fn read(spec: &str) -> Result<BTreeMap<String, u64>, BenchError> {
    let (dir, baseline) = match spec.split_once('@') {
        Some((d, b)) => (PathBuf::from(d), Some(b.to_string())),
        None => (PathBuf::from(spec), None),
    };
    let suffix = baseline.as_ref().map(|b| format!(".out.base@{b}"));
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| BenchError::Read {
            path: d.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let Some(id) = name.strip_prefix("callgrind.") else {
                continue;
            };
            let id = match &suffix {
                Some(s) => id.strip_suffix(s.as_str()),
                None => id.strip_suffix(".out"),
            };
            let Some(id) = id else { continue };
            let rel = p
                .parent()
                .and_then(|parent| parent.parent())
                .and_then(|g| g.strip_prefix(&dir).ok())
                .map(|g| g.display().to_string())
                .unwrap_or_default();
            let key = if rel.is_empty() {
                id.to_string()
            } else {
                format!("{rel}/{id}")
            };
            out.insert(key, instructions(&p)?);
        }
    }
    if out.is_empty() {
        return Err(BenchError::Empty {
            path: dir,
            baseline,
        });
    }
    Ok(out)
}

/// The Ir total of one callgrind output file.
fn instructions(path: &Path) -> Result<u64, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut ir = None;
    for line in text.lines() {
        if let Some(events) = line.strip_prefix("events:") {
            ir = events.split_whitespace().position(|e| e == "Ir");
        } else if let Some(totals) = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))
            && let Some(i) = ir
            && let Some(v) = totals
                .split_whitespace()
                .nth(i)
                .and_then(|v| v.parse().ok())
        {
            return Ok(v);
        }
    }
    Err(BenchError::Format {
        path: path.to_path_buf(),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRow {
    pub bench: String,
    pub base: Option<u64>,
    pub new: Option<u64>,
    pub change_pct: Option<f64>,
    pub regressed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchComparison {
    pub threshold_pct: f64,
    pub rows: Vec<BenchRow>,
}

pub fn compare(
    base: &BTreeMap<String, u64>,
    new: &BTreeMap<String, u64>,
    threshold_pct: f64,
) -> BenchComparison {
    let mut ids: Vec<&String> = base.keys().chain(new.keys()).collect();
    ids.sort();
    ids.dedup();
    let rows = ids
        .into_iter()
        .map(|id| {
            let (b, n) = (base.get(id).copied(), new.get(id).copied());
            let change_pct = match (b, n) {
                (Some(b), Some(n)) if b > 0 => Some((n as f64 - b as f64) / b as f64 * 100.0),
                _ => None,
            };
            BenchRow {
                bench: id.clone(),
                base: b,
                new: n,
                regressed: change_pct.is_some_and(|c| c > threshold_pct),
                change_pct,
            }
        })
        .collect();
    BenchComparison {
        threshold_pct,
        rows,
    }
}

impl BenchComparison {
    pub fn has_regression(&self) -> bool {
        self.rows.iter().any(|r| r.regressed)
    }

    pub fn markdown(&self) -> String {
        let mut s = String::from("## meshsim compare: deterministic benches\n\n");
        let regressed = self.rows.iter().filter(|r| r.regressed).count();
        let _ = writeln!(
            s,
            "Instructions under callgrind, which repeat exactly: a change beyond {}% counts, no statistics needed.\n\n**{}**: {regressed} of {} benches regressed.\n",
            self.threshold_pct,
            if regressed > 0 {
                "REGRESSION"
            } else {
                "No regression"
            },
            self.rows.len()
        );
        s.push_str("| bench | base | new | change | verdict |\n|---|---:|---:|---:|---|\n");
        for r in &self.rows {
            let n = |v: Option<u64>| v.map_or_else(|| "–".to_string(), |v| v.to_string());
            let verdict = match (r.base, r.new, r.regressed, r.change_pct) {
                (None, _, _, _) => "only in new",
                (_, None, _, _) => "only in base",
                (_, _, true, _) => "**regressed**",
                (_, _, _, Some(c)) if c < -self.threshold_pct => "improved",
                _ => "same",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {verdict} |",
                r.bench,
                n(r.base),
                n(r.new),
                r.change_pct
                    .map_or_else(|| "n/a".to_string(), |c| format!("{c:+.3}%"))
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path, id: &str, suffix: &str, ir: u64) {
        let d = dir.join("sim/deterministic/paths").join(id);
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(
            d.join(format!("callgrind.{id}{suffix}")),
            format!("events: Ir Dr Dw\nsummary: {ir} 5 6\nfn=x\n1 2 3\ntotals: {ir} 5 6\n"),
        )
        .expect("write");
    }

    #[test]
    fn reads_baselines_and_latest_runs_and_flags_beyond_the_threshold() {
        let t = tempfile::tempdir().expect("tmp");
        let d = t.path();
        tree(d, "ztunnel_l4.one_rule", ".out.base@main", 1_000_000);
        tree(d, "ztunnel_l4.one_rule", ".out", 1_050_000);
        tree(d, "jwt.es256", ".out.base@main", 2_000_000);
        tree(d, "jwt.es256", ".out", 2_000_000);
        let spec = format!("{}@main", d.display());
        assert!(is_bench_tree(&spec));
        let base = read(&spec).expect("baseline");
        let new = read(&d.display().to_string()).expect("latest");
        assert_eq!(
            base["sim/deterministic/paths/ztunnel_l4.one_rule"],
            1_000_000
        );
        let c = compare(&base, &new, DEFAULT_THRESHOLD_PCT);
        assert!(c.has_regression());
        let md = c.markdown();
        assert!(md.contains("| sim/deterministic/paths/ztunnel_l4.one_rule | 1000000 | 1050000 | +5.000% | **regressed** |"), "{md}");
        assert!(
            md.contains(
                "| sim/deterministic/paths/jwt.es256 | 2000000 | 2000000 | +0.000% | same |"
            ),
            "{md}"
        );
        assert!(!compare(&base, &base, 1.0).has_regression());
        let e = read(&format!("{}@nope", d.display()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no callgrind figures for baseline `nope`"),
            "{e}"
        );
    }
}
