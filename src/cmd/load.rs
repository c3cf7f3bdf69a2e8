//! `meshsim load TARGET`: drive load at any HTTP or TCP target, print a summary.
//!
//! With `--rate` the load is an open loop at that rate (wrk2-style: latency counts from each
//! request's intended send time); without it, a closed loop where every connection sends back
//! to back (wrk-style saturation). `--loop` says it explicitly.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use loadgen::{
    LatencySummary, LoadResult, LoadSpec, Mode, Progress, ProgressFn, Protocol, StepResult, Target,
};

/// The lines around `--json -`'s result on stdout.
pub const JSON_BEGIN: &str = "----- meshsim-load-json-begin -----";
pub const JSON_END: &str = "----- meshsim-load-json-end -----";

#[derive(clap::Args)]
pub struct Args {
    /// What to load: http://HOST:PORT/PATH or tcp://HOST:PORT (HOST: an IP or a name).
    pub target: String,
    /// Requests per second, open loop. A comma list runs one step per rate: 500,1000,2000.
    #[arg(long, value_delimiter = ',')]
    pub rate: Vec<f64>,
    /// open (needs --rate) or closed (back to back). Default: open with --rate, else closed.
    #[arg(long = "loop", value_enum)]
    pub loop_kind: Option<ModeArg>,
    /// Default: http1 for http://, tcp-rr for tcp://.
    #[arg(long, value_enum)]
    pub protocol: Option<ProtocolArg>,
    #[arg(long, short = 'c', default_value_t = 4)]
    pub connections: usize,
    /// Measured time of each step.
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Run before each step and left out of its results.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// HTTP: request body size (sent as a POST when > 0). tcp-rr: request size (default 1).
    /// tcp-stream: size of each write (default 65536).
    #[arg(long)]
    pub request_bytes: Option<usize>,
    /// HTTP: asks meshsim's echo server for this many bytes (header x-echo-bytes).
    /// tcp-rr: bytes read per request (default: the request size, as an echo answers).
    #[arg(long)]
    pub response_bytes: Option<usize>,
    /// Per request; a request that takes longer counts as a timeout error.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// HTTP method, e.g. POST; default: POST with a request body, else GET.
    #[arg(long, short = 'X')]
    pub method: Option<String>,
    /// Extra HTTP request header, "Name: value" (repeatable).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Also write the full results (with HDR histograms) as JSON to this file; `-`: to
    /// stdout after the summary, between `meshsim-load-json-begin` and `-end` lines.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Open,
    Closed,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ProtocolArg {
    Http1,
    Http1Churn,
    TcpRr,
    TcpStream,
}

fn spec_from(a: &Args) -> anyhow::Result<LoadSpec> {
    let target = Target::parse(&a.target)?;
    let mode = match (a.loop_kind, a.rate.is_empty()) {
        (None | Some(ModeArg::Open), false) => Mode::Open {
            rates: a.rate.clone(),
        },
        (None | Some(ModeArg::Closed), true) => Mode::Closed,
        (Some(ModeArg::Open), true) => anyhow::bail!("an open loop needs --rate, e.g. --rate 1000"),
        (Some(ModeArg::Closed), false) => {
            anyhow::bail!("--rate is for the open loop: drop it, or drop --loop closed")
        }
    };
    let mut spec = LoadSpec::new(target, mode);
    if let Some(p) = a.protocol {
        spec.protocol = match p {
            ProtocolArg::Http1 => Protocol::Http1,
            ProtocolArg::Http1Churn => Protocol::Http1Churn,
            ProtocolArg::TcpRr => Protocol::TcpRr,
            ProtocolArg::TcpStream => Protocol::TcpStream,
        };
    }
    spec.connections = a.connections;
    spec.duration = a.duration;
    spec.warmup = a.warmup;
    spec.timeout = a.timeout;
    spec.response_bytes = a.response_bytes;
    spec.method = a.method.clone();
    spec.request_bytes = a.request_bytes.unwrap_or(match spec.protocol {
        Protocol::Http1 | Protocol::Http1Churn => 0,
        Protocol::TcpRr => 1,
        Protocol::TcpStream => 64 * 1024,
    });
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} has no colon; write it as \"Name: value\""))?;
        spec.headers
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    spec.validate()?;
    Ok(spec)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let spec = spec_from(&a)?;
    if a.threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads)
            .thread_name("meshsim-load")
            .enable_all()
            .build()
    }
    .context("cannot start the load runtime")?;

    // A live line only for a person watching; logs and CI get the summary alone.
    let bar = (std::io::stderr().is_terminal() && !super::in_ci()).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        b.set_message(format!("loading {} ...", spec.target));
        b
    });
    let progress: Option<ProgressFn> = bar.clone().map(|b| {
        let stream = spec.protocol == Protocol::TcpStream;
        Arc::new(move |p: &Progress| b.set_message(progress_line(p, stream))) as ProgressFn
    });

    let result = rt.block_on(loadgen::run(
        &spec,
        loadgen::Hooks {
            progress,
            ..Default::default()
        },
    ));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let result = result?;
    print_summary(&result);
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&result)?;
        if path.as_os_str() == "-" {
            // In a pod, stdout is what `kubectl logs` keeps: the markers let `import k8s`
            // find the result among the summary lines.
            println!("{JSON_BEGIN}\n{text}\n{JSON_END}");
        } else {
            std::fs::write(path, text + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    let dead = result
        .steps
        .iter()
        .any(|s| s.requests == 0 && s.throughput_bps.is_none_or(|t| t == 0.0));
    if dead {
        eprintln!(
            "error: a step had no successful request: is {} up and answering?",
            result.target
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_line(p: &Progress, stream: bool) -> String {
    let step = if p.steps > 1 {
        format!("step {}/{} ", p.step + 1, p.steps)
    } else {
        String::new()
    };
    let rate = p
        .target_rps
        .map(|r| format!("rate {r}/s, "))
        .unwrap_or_default();
    let phase = if p.in_warmup { " (warmup)" } else { "" };
    let got = if stream {
        format!("{}/s", bytes(p.bytes_per_s))
    } else {
        format!("{:.0} rps", p.achieved_rps)
    };
    format!(
        "{step}{rate}{:.0} s{phase}: {got}, {} errors",
        p.elapsed.as_secs_f64(),
        p.errors
    )
}

fn print_summary(r: &LoadResult) {
    println!(
        "{} · {} · {} loop · {} connections · warmup {} s per step",
        r.target,
        r.protocol.as_str(),
        r.mode,
        r.connections,
        r.warmup_s
    );
    for (i, s) in r.steps.iter().enumerate() {
        println!();
        print_step(i, s);
    }
}

fn print_step(i: usize, s: &StepResult) {
    let errors = s.error_count();
    let rate = s
        .target_rps
        .map(|r| format!("rate {r}/s, "))
        .unwrap_or_default();
    if let Some(t) = s.throughput_bps {
        println!(
            "step {}: {rate}{:.2} s: {}/s ({:.2} Gbit/s), {errors} errors",
            i + 1,
            s.duration_s,
            bytes(t),
            t * 8.0 / 1e9
        );
    } else {
        println!(
            "step {}: {rate}{:.2} s: {} requests, achieved {:.1} rps, {errors} errors",
            i + 1,
            s.duration_s,
            s.requests,
            s.achieved_rps
        );
    }
    if s.throughput_bps.is_none() && s.requests > 0 {
        println!(
            "  {:<22}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
        );
        row("latency (corrected)", &s.latency);
        row("service time", &s.service_time);
    }
    if errors > 0 {
        let list: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("  errors: {}", list.join(", "));
    }
}

fn row(name: &str, l: &LatencySummary) {
    println!(
        "  {name:<22}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        us(l.p50_us as f64),
        us(l.p90_us as f64),
        us(l.p99_us as f64),
        us(l.p999_us as f64),
        us(l.p9999_us as f64),
        us(l.max_us as f64),
        us(l.mean_us)
    );
}

fn us(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.0}µs")
    } else if v < 1e6 {
        format!("{:.2}ms", v / 1e3)
    } else {
        format!("{:.3}s", v / 1e6)
    }
}

fn bytes(b: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}
