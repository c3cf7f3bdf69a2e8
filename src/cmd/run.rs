//! `meshsim run SCENARIO`: every mode in turn, then `run.json`, `report.html`, charts and
//! `summary.md` in the output directory.
//!
//! Exit codes: 0 all good; 1 an SLO failed; 2 an error (nothing measured is lost: what was
//! measured before it is written, marked incomplete); 130 interrupted (Ctrl-C), results
//! written and marked incomplete.
//!
//! `run.json` is written after every finished mode (marked incomplete until the last), so a
//! run killed outright, or a machine lost, keeps every mode it finished; `meshsim report DIR`
//! renders such a directory and `meshsim run SCENARIO --resume DIR` finishes it.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
    /// noise from change; `auto` adds rounds until every proxy's CPU and every flow's p50
    /// reach the `--detect` limit, or `--budget` is spent.
    #[arg(long, default_value = "1", value_parser = parse_repeat)]
    pub repeat: Repeat,
    /// With `--repeat auto`: the detection limit to reach, e.g. 5% (a regression this size
    /// would be found 4 times in 5 against a baseline of as many repeats).
    #[arg(long, value_parser = super::compare::parse_pct)]
    pub detect: Option<f64>,
    /// With `--repeat auto`: the time the run may take before it stops adding rounds.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub budget: Option<Duration>,
    /// Measured time of every flow's steps, overriding the scenario (e.g. 5s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Warmup before every step, overriding the scenario (e.g. 1s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Finish an interrupted run: the run directory whose run.json lacks modes. Runs only the
    /// missing ones, with the modes, repeats and times that run had, and writes into it.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["modes", "repeat", "duration", "warmup", "out", "find_max"])]
    pub resume: Option<PathBuf>,
    /// Search each open-loop flow's highest rate meeting its SLOs, per mode, from its first
    /// rate (as `rate: search` does): steps doubled until one fails, then bisected to 5%.
    #[arg(long)]
    pub find_max: bool,
}

/// `--repeat N` or `--repeat auto`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Repeat {
    Times(u32),
    Auto,
}

fn parse_repeat(s: &str) -> Result<Repeat, String> {
    match s {
        "auto" => Ok(Repeat::Auto),
        n => match n.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Repeat::Times(n)),
            _ => Err(format!("{s:?} is neither a count of at least 1 nor `auto`")),
        },
    }
}

/// `--repeat auto` without `--detect` or `--budget`.
const AUTO_DEFAULT_DETECT_PCT: f64 = 5.0;
const AUTO_DEFAULT_BUDGET: Duration = Duration::from_secs(30 * 60);

/// `--duration`, `--warmup` and `--mode` become part of the scenario the run records, so
/// `run.json` says what was measured (and a resumed run repeats it).
pub(super) fn apply_overrides(loaded: &mut scenario::Loaded, args: &Args) {
    for f in &mut loaded.scenario.flows {
        if args.find_max
            && let Some(&start) = f.rate.steps().first()
        {
            f.rate = scenario::Rate::Search { start };
        }
        if let Some(d) = args.duration {
            f.duration = scenario::Dur(d);
        }
        if let Some(w) = args.warmup {
            f.warmup = scenario::Dur(w);
        }
    }
    if !args.modes.is_empty() {
        loaded.scenario.modes = args.modes.iter().map(|&m| Mode::from(m)).collect();
    }
}

/// What an interrupted run left: its results, and the overrides it ran with applied to the
/// freshly loaded scenario. Refuses a scenario that changed since.
fn resume_from(
    dir: &Path,
    loaded: &mut scenario::Loaded,
) -> anyhow::Result<(results::RunResult, RunOptions)> {
    let path = dir.join("run.json");
    let earlier = results::RunResult::load(&path)
        .with_context(|| format!("cannot resume from {}", dir.display()))?;
    let was = &earlier.scenario.scenario;
    for (f, old) in loaded.scenario.flows.iter_mut().zip(&was.flows) {
        f.duration = old.duration;
        f.warmup = old.warmup;
    }
    loaded.scenario.modes = was.modes.clone();
    let mut now = loaded.resolved();
    // A run from before meshsim kept its sources is resumed on the rest being the same.
    if earlier.scenario.sources.is_empty() {
        now.sources.clear();
    }
    if now != earlier.scenario {
        anyhow::bail!(
            "{} was made from another version of {}: the scenario or its manifests changed \
             since; start a new run instead",
            path.display(),
            loaded.path.display()
        );
    }
    let mut opts = RunOptions::new();
    opts.repeat = earlier.repeats;
    opts.done = results::interpret::finished(&earlier);
    Ok((earlier, opts))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Everything the user can get wrong is checked before any cluster starts.
    let Some(Prepared {
        loaded,
        earlier,
        mut opts,
        profile,
        out_dir,
    }) = prepare(&args)?
    else {
        return Ok(ExitCode::SUCCESS);
    };

    // The sandbox must be entered while this process has one thread; stop signals are
    // blocked before any thread starts so only the watcher receives them.
    let sandbox = sim::sandbox::enter().context("cannot set up the sandbox")?;
    watch_stop_signals(&opts)?;
    let bar = progress(&loaded, &mut opts);

    let build = results::interpret::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: option_env!("MESHSIM_COMMIT").map(str::to_string),
    };
    // The static checklist is the scenario's, whatever was measured: computed once; for a
    // migration, of where it ends (after its last stage).
    let stages = loaded
        .scenario
        .migration
        .as_ref()
        .map_or(0, |m| m.stages.len());
    let target = loaded.at_stage(stages.checked_sub(1));
    let check = sim::check::check(&target, target.first_mode());
    let sidecars_after = check
        .dataplanes
        .get(&scenario::DataPlane::Sidecar)
        .map_or(0, Vec::len);
    let checklist = check.checklist();
    let to_result: Arc<super::repeat_auto::ToResult> = {
        let (loaded, build, earlier) = (loaded.clone(), build.clone(), earlier.clone());
        Arc::new(move |raw: &results::raw::RawRun| {
            let mut run = match &earlier {
                Some(e) => results::interpret::resumed(&loaded, e, raw, &build),
                None => results::interpret::run_result(&loaded, raw, &build),
            };
            run.checklist = checklist.clone();
            run
        })
    };
    let save_error = save_each_mode(&mut opts, &out_dir, to_result.clone());
    opts.logs_dir = Some(out_dir.join("logs"));
    // Rounds start at two: a spread needs two.
    let auto = (args.repeat == Repeat::Auto && earlier.is_none()).then(|| {
        super::repeat_auto::AutoRepeat::new(
            args.detect.unwrap_or(AUTO_DEFAULT_DETECT_PCT),
            args.budget.unwrap_or(AUTO_DEFAULT_BUDGET),
        )
    });
    if let Some(a) = &auto {
        opts.more = Some(a.more(to_result.clone()));
    }

    let started = Instant::now();
    let result = sim::runner::run(&loaded, &profile, sandbox, &opts);
    if let Some(b) = &bar {
        b.finish();
    }
    if let Some(e) = save_error.lock().ok().and_then(|mut s| s.take()) {
        return Err(e.context("cannot save the measured modes"));
    }
    let (output, failure) = match result {
        Ok(o) => (Some(o), None),
        Err(f) => (f.partial.map(|p| *p), Some(f.error)),
    };
    let reach = match &output {
        Some(o) if failure.is_none() && !o.incomplete => {
            migration_reach(&loaded, o, &profile, sandbox)?
        }
        _ => None,
    };
    let mut wrote = None;
    if let Some(o) = output
        .as_ref()
        .filter(|o| !o.modes.is_empty() || earlier.is_some())
    {
        let mut run = to_result(o);
        run.reach = reach;
        let live = results::stages::live_checklist(&run, sidecars_after);
        run.checklist.extend(live);
        run.save(out_dir.join("run.json"))?;
        render(&run, &out_dir)?;
        println!("{}", reports::render::summary_markdown(&run).trim_end());
        println!();
        println!(
            "results in {} (run.json, report.html, summary.md, charts) after {:.0} s",
            out_dir.display(),
            started.elapsed().as_secs_f64()
        );
        wrote = Some(run);
    }
    if let Some(a) = &auto {
        let missed = a.report();
        if missed.is_empty() {
            println!(
                "repeat auto: every figure reached the {}% detection limit",
                a.detect_pct
            );
        } else {
            println!(
                "repeat auto: {} figure(s) did not reach the {}% detection limit within {} (or {} rounds):",
                missed.len(),
                a.detect_pct,
                humantime::format_duration(a.budget),
                super::repeat_auto::MAX_ROUNDS
            );
            for m in missed {
                println!("- {m}");
            }
        }
    }
    if let Some(e) = failure {
        if wrote.is_some() {
            eprintln!(
                "the run stopped on an error; what was measured before it is written, marked incomplete"
            );
        }
        return Err(anyhow::Error::new(e));
    }
    Ok(exit_code(wrote.as_ref()))
}

/// A migration measured live is also probed stage by stage (a cluster each, after the load):
/// the reachability diff and mTLS list of run.json, and the changes no stage expects.
fn migration_reach(
    loaded: &scenario::Loaded,
    raw: &results::raw::RawRun,
    profile: &scenario::profile::Profile,
    sandbox: sim::sandbox::Sandbox,
) -> anyhow::Result<Option<results::run::ReachResult>> {
    if !raw.modes.iter().any(|m| !m.stages.is_empty()) {
        return Ok(None);
    }
    eprintln!("probing the reachability matrix at each stage (as `meshsim reach` does)");
    let r = sim::reach::migration(loaded, profile, sandbox)
        .context("cannot probe the migration's reachability")?;
    Ok(Some(r))
}

/// What a run needs before it starts, all checked.
struct Prepared {
    loaded: scenario::Loaded,
    /// The run being resumed.
    earlier: Option<results::RunResult>,
    opts: RunOptions,
    profile: scenario::profile::Profile,
    out_dir: PathBuf,
}

/// Loads and checks everything; `None` when there is nothing to do (a complete run resumed).
fn prepare(args: &Args) -> anyhow::Result<Option<Prepared>> {
    let mut loaded = super::load_scenario(&args.scenario)?;
    if args.find_max && (loaded.scenario.migration.is_some() || !loaded.scenario.faults.is_empty())
    {
        anyhow::bail!(
            "{}: --find-max runs as many steps as a search needs, and faults and migration stages are placed on fixed steps; run it on a scenario without them",
            args.scenario.display()
        );
    }
    if let Some(m) = &loaded.scenario.migration {
        eprintln!(
            "note: in mode declared, `run` applies the {} migration stage(s) live, one step each, with the load running across them; the other modes measure the scenario as written",
            m.stages.len(),
        );
    }
    let (earlier, mut opts) = match &args.resume {
        Some(dir) => {
            let (earlier, opts) = resume_from(dir, &mut loaded)?;
            (Some(earlier), opts)
        }
        None => {
            apply_overrides(&mut loaded, args);
            let mut opts = RunOptions::new();
            opts.repeat = match args.repeat {
                Repeat::Times(n) => n,
                Repeat::Auto => 2,
            };
            if args.repeat != Repeat::Auto && (args.detect.is_some() || args.budget.is_some()) {
                anyhow::bail!("--detect and --budget go with --repeat auto");
            }
            (None, opts)
        }
    };
    opts.modes = loaded.scenario.modes.clone();
    // `--profile` is the user's (a file relative to where they are); the scenario's is taken
    // relative to the scenario file.
    let profile = match &args.profile {
        Some(p) => scenario::profile::Profile::load(p)?,
        None => loaded.profile()?,
    };
    if let Some(e) = &earlier
        && e.profile.name != profile.name
    {
        anyhow::bail!(
            "the run being resumed used cost profile `{}`; resume it with --profile {}",
            e.profile.name,
            e.profile.name
        );
    }
    sim::runner::check(&loaded, &opts)?;
    warn_unjudgeable_slos(&loaded, &opts);
    sim::nft::check_installed()?;
    sim::wire::check_installed(&loaded.scenario.faults)?;
    let out_dir = match (&args.resume, &args.out) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => default_out_dir(&loaded.scenario.name),
    };
    if earlier.as_ref().is_some_and(|e| !e.incomplete) {
        eprintln!(
            "{} is complete already: nothing to resume",
            out_dir.display()
        );
        return Ok(None);
    }
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create the output directory {}", out_dir.display()))?;
    check_writable(&out_dir)?;
    Ok(Some(Prepared {
        loaded,
        earlier,
        opts,
        profile,
        out_dir,
    }))
}

/// Ctrl-C (and TERM, HUP) cancels the run's stop token; a second one exits at once.
fn watch_stop_signals(opts: &RunOptions) -> anyhow::Result<()> {
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
                stop.cancel();
            }
            if signals.wait().is_ok() {
                std::process::exit(130);
            }
        })
        .context("cannot watch for Ctrl-C")?;
    Ok(())
}

/// A progress bar at a terminal, else a line per mode.
fn progress(loaded: &scenario::Loaded, opts: &mut RunOptions) -> Option<Bar> {
    let total = sim::runner::schedule(loaded, opts).len();
    let bar = progress_bar(loaded, opts, total);
    opts.events = Some(match &bar {
        Some(b) => b.clone().events(),
        None => Arc::new(move |e: &Event| {
            if let Event::ModeStarting {
                index,
                mode,
                repeat,
                ..
            } = e
            {
                eprintln!("[{}/{total}] {mode} (repeat {})", index + 1, repeat + 1);
            }
        }),
    });
    bar
}

/// After each mode, everything so far goes to `out_dir/run.json`, marked incomplete until the
/// end; the first error writing it is kept for the caller.
fn save_each_mode(
    opts: &mut RunOptions,
    out_dir: &Path,
    to_result: Arc<super::repeat_auto::ToResult>,
) -> Arc<Mutex<Option<anyhow::Error>>> {
    let save_error: Arc<Mutex<Option<anyhow::Error>>> = Arc::default();
    let (path, slot) = (out_dir.join("run.json"), save_error.clone());
    opts.measured = Some(Arc::new(move |raw: &results::raw::RawRun| {
        let mut run = to_result(raw);
        run.incomplete = true;
        if let Err(e) = run.save(&path)
            && let Ok(mut slot) = slot.lock()
        {
            slot.get_or_insert(anyhow::Error::new(e));
        }
    }));
    save_error
}

/// 130 when interrupted (or nothing measured), 1 when an SLO failed, else 0.
fn exit_code(run: Option<&results::RunResult>) -> ExitCode {
    let Some(run) = run else {
        eprintln!("stopped before anything was measured; nothing written");
        return ExitCode::from(130);
    };
    if run.incomplete {
        return ExitCode::from(130);
    }
    let failed = run.failed_slos();
    for (m, v) in &failed {
        eprintln!(
            "SLO {} failed in {}: {} (observed {:.3}, limit {:.3})",
            v.name, m.mode, v.description, v.observed, v.limit
        );
    }
    let unexpected: Vec<_> = run.reach.iter().flat_map(|r| r.unexpected()).collect();
    for c in &unexpected {
        eprintln!(
            "{} {} → {} {} at stage {} ({} → {}){}: no stage's `expect:` lists it",
            c.kind.to_uppercase(),
            c.from,
            c.to,
            c.request,
            c.to_stage,
            c.before,
            c.after,
            c.decided_by
                .as_ref()
                .map(|d| format!(" [{d}]"))
                .unwrap_or_default()
        );
    }
    if failed.is_empty() && unexpected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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

/// The report, charts and summary beside run.json, with a line for a person at a terminal
/// (rendering the charts takes a few seconds).
pub(super) fn render(run: &results::RunResult, dir: &Path) -> anyhow::Result<()> {
    if std::io::stderr().is_terminal() && !super::in_ci() {
        eprintln!("rendering the report and charts…");
    }
    reports::render_all(run, dir)
        .with_context(|| format!("cannot render the report into {}", dir.display()))?;
    Ok(())
}

pub(super) fn default_out_dir(scenario: &str) -> PathBuf {
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
}

struct BarState {
    index: usize,
    total: usize,
    load_start: Option<Instant>,
    mode: String,
    rates: std::collections::BTreeMap<String, f64>,
}

fn progress_bar(loaded: &scenario::Loaded, opts: &RunOptions, total: usize) -> Option<Bar> {
    let tty = std::io::stderr().is_terminal() && !super::in_ci();
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
            total,
            load_start: None,
            mode: String::new(),
            rates: Default::default(),
        })),
        per_mode,
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
                total,
                mode,
                repeat,
            } => {
                s.index = *index;
                // `--repeat auto` grows the schedule as it goes.
                if *total > s.total {
                    s.total = *total;
                    self.bar
                        .set_length((self.per_mode.as_secs() * *total as u64).max(1));
                }
                s.load_start = None;
                s.rates.clear();
                s.mode = format!("{mode} #{}", repeat + 1);
                self.bar
                    .set_position(self.per_mode.as_secs() * *index as u64);
                self.bar.set_message(format!(
                    "[{}/{}] {}: bringing the cluster up",
                    index + 1,
                    s.total,
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
                    s.total,
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
