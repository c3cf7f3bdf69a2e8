//! The engines. A step spawns one task per connection:
//! - open loop: request `i` is intended at `start + i / rate`. A free worker claims the next
//!   index from a shared counter and sends it at its intended time; when every worker is busy,
//!   unclaimed requests wait, and their latency counts from their intended time (the
//!   coordinated-omission correction of wrk2). No central dispatcher: the counter is the queue.
//! - closed loop: each worker sends back to back.
//! - tcp-stream: each worker writes back to back and counts bytes.
//!
//! Warmup and measured phases are told apart by intended index (open loop) or by send time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::LoadError;
use crate::client::{Conn, Exchange, Shared};
use crate::record::{ErrorKind, LoadResult, StepResult, WorkerRecord, step_result};
use crate::spec::{Hooks, LoadSpec, Mode, Progress, ProgressFn, Protocol};
use crate::timer::PreciseTimer;

/// Pause after a failed connect or a broken connection in the closed loop, so a dead target
/// does not spin a core on failing connects.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Runs every step of `spec` and returns one result per step.
///
/// Sockets are opened by `connector`, or else by plain `TcpStream::connect` on the calling
/// runtime (so in the network namespace of its threads). `progress` is called once a second.
pub async fn run(spec: &LoadSpec, hooks: Hooks) -> Result<LoadResult, LoadError> {
    spec.validate()?;
    let addr = resolve(spec.target.host(), spec.target.port()).await?;
    let Hooks {
        connector,
        progress,
        cancel,
        completed,
        step_started,
        next_rate,
    } = hooks;
    let cancel = cancel.unwrap_or_default();
    let run_start = Instant::now();
    let sh = Arc::new(Shared::new(spec, addr, connector, completed));
    let mut rates: Vec<Option<f64>> = match &spec.mode {
        Mode::Open { rates } => rates.iter().map(|r| Some(*r)).collect(),
        Mode::Closed => vec![None],
    };
    let mut conns: Vec<Conn> = (0..spec.connections).map(|_| Conn::new()).collect();
    let mut steps = Vec::with_capacity(rates.len());
    let mut k = 0;
    while k < rates.len() {
        let rate = rates[k];
        let which = StepIndex {
            step: k,
            steps: rates.len(),
        };
        if let Some(f) = &step_started {
            f(k);
        }
        // Dropping the step's future aborts its workers (they are held by an abort guard).
        let step = tokio::select! {
            r = run_step(&sh, spec, conns, rate, which, progress.clone()) => r?,
            () = cancel.cancelled() => break,
        };
        let (mut result, back, started) = step;
        result.offset_s = started.saturating_duration_since(run_start).as_secs_f64();
        conns = back;
        k += 1;
        if k == rates.len()
            && let Some(next) = next_rate.as_ref().and_then(|f| f(&result))
        {
            rates.push(Some(next));
        }
        steps.push(result);
    }
    Ok(LoadResult {
        target: spec.target.to_string(),
        protocol: spec.protocol,
        mode: match spec.mode {
            Mode::Open { .. } => "open".into(),
            Mode::Closed => "closed".into(),
        },
        connections: spec.connections,
        warmup_s: spec.warmup.as_secs_f64(),
        cancelled: steps.len() < rates.len(),
        steps,
    })
}

/// Resolves once, at start: every connection of the run goes to the same address.
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, LoadError> {
    let err = |source| LoadError::Resolve {
        host: host.to_string(),
        source,
    };
    let mut addrs = tokio::net::lookup_host((host, port)).await.map_err(err)?;
    addrs.next().ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address found",
        ))
    })
}

#[derive(Clone, Copy)]
struct StepIndex {
    step: usize,
    steps: usize,
}

struct StepCtx {
    sh: Arc<Shared>,
    protocol: Protocol,
    start: Instant,
    measure_start: Instant,
    end: Instant,
    /// Open loop only: when each request is intended.
    schedule: crate::schedule::Schedule,
    total: u64,
    warm_n: u64,
    next: AtomicU64,
    /// Live counts for the progress line, warmup included.
    done: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    /// The step's per-second series, shared by its workers.
    series: Arc<std::sync::Mutex<crate::record::Series>>,
    /// The warmup's counts, when the spec asks for them.
    warmup: Option<std::sync::Mutex<crate::record::WarmupTally>>,
}

impl StepCtx {
    /// A warmup request's outcome, when the warmup is counted.
    fn warm(&self, r: &Exchange, done: Instant) {
        if let Some(w) = &self.warmup {
            w.lock()
                .unwrap_or_else(|e| e.into_inner())
                .count(r.as_ref().err().copied(), done);
        }
    }
}

async fn run_step(
    sh: &Arc<Shared>,
    spec: &LoadSpec,
    conns: Vec<Conn>,
    rate: Option<f64>,
    which: StepIndex,
    progress: Option<ProgressFn>,
) -> Result<(StepResult, Vec<Conn>, Instant), LoadError> {
    let mut timers = Vec::new();
    if rate.is_some() {
        for _ in 0..conns.len() {
            timers.push(PreciseTimer::new().map_err(LoadError::Timer)?);
        }
    }
    // The first intended send a little ahead, so every worker is parked before it.
    let start = Instant::now() + Duration::from_millis(1);
    let measure_start = start + spec.warmup;
    let end = measure_start + spec.duration;
    let schedule = crate::schedule::Schedule::new(rate.unwrap_or(0.0), &spec.surges);
    // Requests intended before `t`; the tolerance keeps 1.1 s x 100/s at 110, not 111.
    let intended_before = |t: Duration| (schedule.count(t) - 1e-6).ceil().max(0.0) as u64;
    let cx = Arc::new(StepCtx {
        sh: sh.clone(),
        protocol: spec.protocol,
        start,
        measure_start,
        end,
        total: intended_before(spec.warmup + spec.duration),
        warm_n: intended_before(spec.warmup),
        schedule: schedule.clone(),
        next: AtomicU64::new(0),
        series: Arc::new(std::sync::Mutex::new(crate::record::Series::new(
            measure_start,
        ))),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        warmup: spec
            .record_warmup
            .then(|| std::sync::Mutex::new(crate::record::WarmupTally::new(start))),
    });
    let ticker = progress.map(|f| tokio::spawn(tick(cx.clone(), f, which, rate)));
    let mut tasks = AbortOnDrop(Vec::with_capacity(conns.len()));
    let mut timers = timers.into_iter();
    for conn in conns {
        let cx = cx.clone();
        tasks.0.push(match (spec.protocol, timers.next()) {
            (Protocol::TcpStream, _) => tokio::spawn(stream_worker(cx, conn)),
            (_, Some(timer)) => tokio::spawn(open_worker(cx, conn, timer)),
            (_, None) => tokio::spawn(closed_worker(cx, conn)),
        });
    }
    let mut records = Vec::with_capacity(tasks.0.len());
    let mut conns = Vec::with_capacity(tasks.0.len());
    let mut failed = None;
    for t in tasks.0.iter_mut() {
        match t.await {
            Ok((c, rec)) => {
                conns.push(c);
                records.push(rec);
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => failed = Some(e),
        }
    }
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(e) = failed {
        return Err(LoadError::Aborted(e.to_string()));
    }
    let unsent = if rate.is_some() {
        let attempted: u64 = records
            .iter()
            .map(|w| w.requests + w.errors.iter().sum::<u64>())
            .sum();
        (cx.total - cx.warm_n).saturating_sub(attempted)
    } else {
        0
    };
    let mut result = step_result(
        rate,
        spec.duration,
        measure_start,
        records,
        unsent,
        spec.protocol == Protocol::TcpStream,
    );
    result.warmup = cx
        .warmup
        .as_ref()
        .map(|w| w.lock().unwrap_or_else(|e| e.into_inner()).record());
    Ok((result, conns, start))
}

async fn tick(cx: Arc<StepCtx>, f: ProgressFn, which: StepIndex, rate: Option<f64>) {
    let period = Duration::from_secs(1);
    let mut iv = tokio::time::interval_at((cx.start + period).into(), period);
    let (mut last_t, mut last_done, mut last_bytes) = (cx.start, 0, 0);
    loop {
        iv.tick().await;
        let now = Instant::now();
        let (done, bytes) = (cx.done.load(Relaxed), cx.bytes.load(Relaxed));
        let dt = now.duration_since(last_t).as_secs_f64().max(1e-3);
        f(&Progress {
            elapsed: now.duration_since(cx.start),
            step: which.step,
            steps: which.steps,
            target_rps: rate,
            in_warmup: now < cx.measure_start,
            achieved_rps: (done - last_done) as f64 / dt,
            bytes_per_s: (bytes - last_bytes) as f64 / dt,
            errors: cx.errors.load(Relaxed),
        });
        (last_t, last_done, last_bytes) = (now, done, bytes);
    }
}

async fn exchange(conn: &mut Conn, cx: &StepCtx) -> Exchange {
    let sh = &*cx.sh;
    let r = tokio::time::timeout(sh.timeout, async {
        match cx.protocol {
            Protocol::Http1 => conn.http(sh, false).await,
            Protocol::Http1Churn => conn.http(sh, true).await,
            Protocol::TcpRr => conn.rr(sh).await,
            Protocol::TcpStream => conn.write_chunk(sh).await,
        }
    })
    .await;
    let r = r.unwrap_or_else(|_| {
        conn.drop_stream();
        Err(ErrorKind::Timeout)
    });
    match r {
        Ok((_, _)) => {
            cx.done.fetch_add(1, Relaxed);
            if let Some(c) = &sh.completed {
                c.fetch_add(1, Relaxed);
            }
        }
        Err(_) => {
            cx.errors.fetch_add(1, Relaxed);
        }
    };
    r
}

/// A step's worker tasks, aborted when the step is dropped part-way (a cancelled run), so no
/// request goes on after the caller stopped.
struct AbortOnDrop<T>(Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

async fn open_worker(
    cx: Arc<StepCtx>,
    mut conn: Conn,
    mut timer: PreciseTimer,
) -> (Conn, WorkerRecord) {
    let mut rec = WorkerRecord::new(cx.series.clone());
    // Past this, requests still unsent are given up (and counted as timeouts).
    let give_up = cx.end + cx.sh.timeout;
    loop {
        let i = cx.next.fetch_add(1, Relaxed);
        if i >= cx.total {
            break;
        }
        let intended = cx.start + cx.schedule.time_of(i);
        if intended > Instant::now() && timer.sleep_until(intended).await.is_err() {
            tokio::time::sleep_until(intended.into()).await;
        }
        let sent = Instant::now();
        if sent >= give_up {
            break;
        }
        let r = exchange(&mut conn, &cx).await;
        let done = Instant::now();
        if i >= cx.warm_n {
            match r {
                Ok((s, rcvd)) => rec.ok(done - intended, done - sent, done, s, rcvd),
                Err(k) => rec.error(k, done),
            }
        } else {
            cx.warm(&r, done);
        }
        if cx.protocol == Protocol::Http1Churn {
            conn.close_after_churn().await;
        }
    }
    (conn, rec)
}

async fn closed_worker(cx: Arc<StepCtx>, mut conn: Conn) -> (Conn, WorkerRecord) {
    let mut rec = WorkerRecord::new(cx.series.clone());
    loop {
        let sent = Instant::now();
        if sent >= cx.end {
            break;
        }
        let r = exchange(&mut conn, &cx).await;
        let done = Instant::now();
        if sent >= cx.measure_start {
            match r {
                Ok((s, rcvd)) => rec.ok(done - sent, done - sent, done, s, rcvd),
                Err(k) => rec.error(k, done),
            }
        } else {
            cx.warm(&r, done);
        }
        if cx.protocol == Protocol::Http1Churn {
            conn.close_after_churn().await;
        }
        if matches!(r, Err(k) if !matches!(k, ErrorKind::Http4xx | ErrorKind::Http5xx)) {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    (conn, rec)
}

async fn stream_worker(cx: Arc<StepCtx>, mut conn: Conn) -> (Conn, WorkerRecord) {
    let mut rec = WorkerRecord::new(cx.series.clone());
    loop {
        if Instant::now() >= cx.end {
            break;
        }
        let r = exchange(&mut conn, &cx).await;
        let done = Instant::now();
        match r {
            Ok((s, _)) => {
                cx.bytes.fetch_add(s, Relaxed);
                if done >= cx.measure_start && done < cx.end {
                    rec.bytes(s, done);
                }
            }
            Err(k) => {
                if done >= cx.measure_start {
                    rec.error(k, done);
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    (conn, rec)
}
