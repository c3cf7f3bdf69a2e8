//! `meshsim run SCENARIO`: every mode in turn, then `run.json`, `report.html`, charts and
//! `summary.md` in the output directory.
//!
//! Exit codes: 0 all good; 1 an SLO failed; 2 an error (nothing measured is lost: what was
//! measured before it is written, marked incomplete); 130 interrupted (Ctrl-C), results
//! written and marked incomplete.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{SigSet, Signal};
use scenario::Mode;
use sim::runner::{Event, RunOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (YAML), e.g. scenarios/quickstart.yaml.
    pub scenario: PathBuf,
    /// Data-plane mode to run (repeatable, in order). Default: the scenario's `modes`.
    #[arg(long = "mode", value_enum)]
    pub modes: Vec<super::DataPlane>,
    /// Cost profile: a bundled name (istio-1.24, native) or a profile file (.yaml) of your own.
    /// Default: the scenario's `profile`.
    #[arg(long)]
    pub profile: Option<String>,
    /// Where to write the results. Default: runs/<scenario>-<date>-<time>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run every mode this many times, interleaved (A B C A B C ...), so `compare` can tell
    /// noise from change.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Measured time of every flow's steps, overriding the scenario (e.g. 5s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Warmup before every step, overriding the scenario (e.g. 1s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Everything the user can get wrong is checked before any cluster starts.
    let loaded = super::load_scenario(&args.scenario)?;
    let mut opts = RunOptions::new();
    opts.modes = args.modes.iter().map(|&m| Mode::from(m)).collect();
    opts.repeat = args.repeat;
    opts.duration = args.duration;
    opts.warmup = args.warmup;
    // `--profile` is the user's (a file relative to where they are); the scenario's is taken
    // relative to the scenario file.
    let profile = match &args.profile {
        Some(p) => scenario::profile::Profile::load(p)?,
        None => loaded.profile()?,
    };
    sim::runner::check(&loaded, &opts)?;
    warn_unjudgeable_slos(&loaded, &opts);
    sim::nft::check_installed()?;
    let out_dir = match &args.out {
        Some(d) => d.clone(),
        None => default_out_dir(&loaded.scenario.name),
    };
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create the output directory {}", out_dir.display()))?;
    check_writable(&out_dir)?;

    // The sandbox must be entered while this process has one thread; stop signals are
    // blocked before any thread starts so only the watcher below receives them.
    let sandbox = sim::sandbox::enter().context("cannot set up the sandbox")?;
    let signals = stop_signals();
    signals
        .thread_block()
        .context("cannot block stop signals")?;
    let stop = opts.stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = signals.wait() {
                eprintln!(
                    "\n{sig}: stopping now; the step in flight is dropped (its window would be \
                     short), every finished step and mode is kept (again to abort at once)"
                );
                stop.store(true, Ordering::Relaxed);
            }
            if signals.wait().is_ok() {
                std::process::exit(130);
            }
        })
        .context("cannot watch for Ctrl-C")?;

    let schedule = sim::runner::schedule(&loaded, &opts);
    let bar = progress_bar(&loaded, &opts, schedule.len());
    if let Some(b) = &bar {
        opts.events = Some(b.clone().events());
    } else {
        let total = schedule.len();
        opts.events = Some(Arc::new(move |e: &Event| {
            if let Event::ModeStarting {
                index,
                mode,
                repeat,
                ..
            } = e
            {
                eprintln!("[{}/{total}] {mode} (repeat {})", index + 1, repeat + 1);
            }
        }));
    }

    let started = Instant::now();
    let result = sim::runner::run(&loaded, &profile, sandbox, &opts);
    if let Some(b) = &bar {
        b.finish();
    }
    let (output, failure) = match result {
        Ok(o) => (Some(o), None),
        Err(f) => (f.partial.map(|p| *p), Some(f.error)),
    };
    let build = reports::ingest::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: option_env!("MESHSIM_COMMIT").map(str::to_string),
    };
    let mut wrote = None;
    if let Some(o) = output.as_ref().filter(|o| !o.modes.is_empty()) {
        let run = reports::ingest::run_result(&loaded, o, &build);
        let path = out_dir.join("run.json");
        run.save(&path)?;
        reports::render_all(&run, &out_dir)
            .with_context(|| format!("cannot render the report into {}", out_dir.display()))?;
        wrote = Some(run);
    }
    if let Some(run) = &wrote {
        println!("{}", reports::render::summary_markdown(run).trim_end());
        println!();
        println!(
            "results in {} (run.json, report.html, summary.md, charts) after {:.0} s",
            out_dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(e) = failure {
        if wrote.is_some() {
            eprintln!(
                "the run stopped on an error; what was measured before it is written, marked incomplete"
            );
        }
        return Err(anyhow::Error::new(e));
    }
    let Some(run) = wrote else {
        eprintln!("stopped before anything was measured; nothing written");
        return Ok(ExitCode::from(130));
    };
    if run.incomplete {
        return Ok(ExitCode::from(130));
    }
    let failed = run.failed_slos();
    if !failed.is_empty() {
        for (m, v) in &failed {
            eprintln!(
                "SLO {} failed in {}: {} (observed {:.3}, limit {:.3})",
                v.name, m.mode, v.description, v.observed, v.limit
            );
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// An `addedP99` SLO needs no-mesh in the run; say so up front rather than skip it silently.
fn warn_unjudgeable_slos(loaded: &scenario::Loaded, opts: &RunOptions) {
    let modes: Vec<Mode> = sim::runner::schedule(loaded, opts)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    if modes.contains(&Mode::NoMesh) {
        return;
    }
    for s in &loaded.scenario.slos {
        if s.added_p99.is_some() {
            eprintln!(
                "warning: SLO {}: addedP99 is measured against no-mesh, which this run leaves out; it will not be judged",
                s.name
            );
        }
    }
}

fn default_out_dir(scenario: &str) -> PathBuf {
    // 2026-11-25T10:11:12Z -> 20261125-101112: sorts by time, safe in any shell.
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let d: String = now.chars().filter(char::is_ascii_digit).collect();
    let (date, time) = d.split_at(8.min(d.len()));
    Path::new("runs").join(format!("{scenario}-{date}-{time}"))
}

fn check_writable(dir: &Path) -> anyhow::Result<()> {
    let probe = dir.join(".meshsim-write-check");
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write into the output directory {}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn stop_signals() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGINT);
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGHUP);
    s
}

/// A progress bar over the whole schedule, for a person at a terminal; none in CI or logs.
#[derive(Clone)]
struct Bar {
    bar: indicatif::ProgressBar,
    state: Arc<Mutex<BarState>>,
    per_mode: Duration,
    total: usize,
}

struct BarState {
    index: usize,
    load_start: Option<Instant>,
    mode: String,
    rates: std::collections::BTreeMap<String, f64>,
}

fn progress_bar(loaded: &scenario::Loaded, opts: &RunOptions, total: usize) -> Option<Bar> {
    let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    if !tty {
        return None;
    }
    let per_mode = sim::runner::planned_load_time(loaded, opts);
    let bar = indicatif::ProgressBar::new((per_mode.as_secs() * total as u64).max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len}s  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(Bar {
        bar,
        state: Arc::new(Mutex::new(BarState {
            index: 0,
            load_start: None,
            mode: String::new(),
            rates: Default::default(),
        })),
        per_mode,
        total,
    })
}

impl Bar {
    fn events(self) -> sim::runner::EventFn {
        Arc::new(move |e: &Event| self.on(e))
    }

    fn on(&self, e: &Event) {
        let Ok(mut s) = self.state.lock() else { return };
        match e {
            Event::ModeStarting {
                index,
                mode,
                repeat,
                ..
            } => {
                s.index = *index;
                s.load_start = None;
                s.rates.clear();
                s.mode = format!("{mode} #{}", repeat + 1);
                self.bar
                    .set_position(self.per_mode.as_secs() * *index as u64);
                self.bar.set_message(format!(
                    "[{}/{}] {}: bringing the cluster up",
                    index + 1,
                    self.total,
                    s.mode
                ));
            }
            Event::LoadStarted { .. } => s.load_start = Some(Instant::now()),
            Event::Progress { flow, progress, .. } => {
                s.rates.insert(flow.clone(), progress.achieved_rps);
                let elapsed = s.load_start.map_or(0, |t| t.elapsed().as_secs());
                self.bar.set_position(
                    self.per_mode.as_secs() * s.index as u64 + elapsed.min(self.per_mode.as_secs()),
                );
                let rates: Vec<String> = s
                    .rates
                    .iter()
                    .map(|(f, r)| format!("{f} {r:.0}/s"))
                    .collect();
                let phase = if progress.in_warmup { " (warmup)" } else { "" };
                self.bar.set_message(format!(
                    "[{}/{}] {}: {}{phase}",
                    s.index + 1,
                    self.total,
                    s.mode,
                    rates.join(", ")
                ));
            }
            Event::ModeFinished { .. } => {}
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
