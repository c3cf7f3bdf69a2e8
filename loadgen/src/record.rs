//! Recording: HDR histograms in microseconds, error counts by kind, per-second series, and the
//! result types a run returns.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::LoadError;
use crate::spec::Protocol;

/// Highest recordable value: 60 s in microseconds; longer latencies are recorded as 60 s.
pub const MAX_US: u64 = 60_000_000;
const SIGFIG: u8 = 3;
/// Per-second histograms only feed p50/p99 of the series: 2 digits keep them 8x smaller.
const SERIES_SIGFIG: u8 = 2;

pub(crate) fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_US, SIGFIG).expect("valid histogram bounds")
}

fn new_series_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, SERIES_SIGFIG).expect("valid histogram bounds")
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).min(MAX_US)
}

/// Why a request failed. An error is counted, never recorded as a latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    ConnectRefused,
    Reset,
    Timeout,
    Http4xx,
    Http5xx,
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::ConnectRefused,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Http4xx,
        ErrorKind::Http5xx,
        ErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::Other => "other",
        }
    }

    pub(crate) fn of_io(e: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => ErrorKind::ConnectRefused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                ErrorKind::Reset
            }
            K::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Other,
        }
    }
}

/// Percentiles of one histogram, and the whole histogram for reading any other later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencySummary {
    pub p50_us: u64,
    pub p75_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub count: u64,
    /// HdrHistogram V2 compressed interchange encoding, base64 ("HISTFAAA..."): what
    /// HdrHistogram's own tools (Java, Go, Python, the plotter) decode.
    pub histogram: String,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram<u64>) -> LatencySummary {
        let mut bytes = Vec::new();
        // Serializing into a Vec cannot fail on I/O; an encoding failure would be a bug in
        // hdrhistogram, and an empty string then reads back as an error, not as wrong numbers.
        let histogram = match V2DeflateSerializer::new().serialize(h, &mut bytes) {
            Ok(_) => base64::engine::general_purpose::STANDARD.encode(&bytes),
            Err(_) => String::new(),
        };
        let q = |q: f64| h.value_at_quantile(q);
        LatencySummary {
            p50_us: q(0.50),
            p75_us: q(0.75),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: h.max(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            count: h.len(),
            histogram,
        }
    }

    /// The whole histogram back, to read any percentile or merge.
    pub fn decode_histogram(&self) -> Result<Histogram<u64>, LoadError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.histogram.trim())
            .map_err(|e| LoadError::Histogram(e.to_string()))?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| LoadError::Histogram(format!("{e:?}")))
    }

    /// One summary of several (e.g. the same step across flows or runs).
    pub fn merge<'a>(
        parts: impl IntoIterator<Item = &'a LatencySummary>,
    ) -> Result<LatencySummary, LoadError> {
        let mut all = new_histogram();
        for p in parts {
            all.add(p.decode_histogram()?)
                .map_err(|e| LoadError::Histogram(format!("{e:?}")))?;
        }
        Ok(LatencySummary::from_histogram(&all))
    }
}

/// One second of a step's measured time (by completion time; the last may be partial).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalSample {
    /// Seconds since the end of the warmup.
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    /// The errors by kind (as [`StepResult::errors`]); only kinds that occurred.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Corrected latency (from the intended send time) of the requests done in that second.
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// The measured part of one step (one rate, or the closed loop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepResult {
    /// Requested rate (open loop); `None` for the closed loop.
    pub target_rps: Option<f64>,
    /// From the end of the warmup to the last measured completion (at least the step duration:
    /// a backlog that drains late makes it longer, and so lowers `achieved_rps`).
    pub duration_s: f64,
    /// Successful requests (errors are not counted here).
    pub requests: u64,
    pub achieved_rps: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// By kind: connect_refused, reset, timeout, http_4xx, http_5xx, other. Open loop: requests
    /// still unsent when the step ended (plus the timeout) count as timeout.
    pub errors: BTreeMap<String, u64>,
    /// Completion minus intended send time (coordinated omission corrected, as wrk2). Closed
    /// loop: the same as service time.
    pub latency: LatencySummary,
    /// Completion minus actual send time.
    pub service_time: LatencySummary,
    /// tcp-stream only: bytes written per second of the step duration (bytes/s, not bits).
    pub throughput_bps: Option<f64>,
    pub series: Vec<IntervalSample>,
    /// Seconds from the start of the run to the start of this step (its warmup), so the
    /// steps' series can be laid on one time line.
    #[serde(default)]
    pub offset_s: f64,
    /// The warmup, counted when the spec asks ([`crate::LoadSpec::record_warmup`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupRecord>,
}

/// A step's warmup, counted apart from its measured window: what a change at the step's
/// start (a migration stage applied live) did before the measurement began.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmupRecord {
    /// Successful requests.
    pub requests: u64,
    /// By kind, as [`StepResult::errors`].
    pub errors: BTreeMap<String, u64>,
    /// One entry per second of the warmup, from the step's start.
    pub seconds: Vec<WarmupSecond>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmupSecond {
    pub requests: u64,
    pub errors: u64,
}

/// The warmup tally a step's workers share (only when asked: one lock per warmup request).
#[derive(Debug)]
pub(crate) struct WarmupTally {
    start: Instant,
    requests: u64,
    errors: [u64; 6],
    seconds: Vec<WarmupSecond>,
}

impl WarmupTally {
    pub fn new(start: Instant) -> WarmupTally {
        WarmupTally {
            start,
            requests: 0,
            errors: [0; 6],
            seconds: Vec::new(),
        }
    }

    pub fn count(&mut self, error: Option<ErrorKind>, done: Instant) {
        let i = done.saturating_duration_since(self.start).as_secs() as usize;
        if self.seconds.len() <= i {
            self.seconds.resize(i + 1, WarmupSecond::default());
        }
        match error {
            None => {
                self.requests += 1;
                self.seconds[i].requests += 1;
            }
            Some(k) => {
                self.errors[k as usize] += 1;
                self.seconds[i].errors += 1;
            }
        }
    }

    pub fn record(&self) -> WarmupRecord {
        WarmupRecord {
            requests: self.requests,
            errors: error_map(self.errors),
            seconds: self.seconds.clone(),
        }
    }
}

fn error_map(errors: [u64; 6]) -> BTreeMap<String, u64> {
    ErrorKind::ALL
        .iter()
        .zip(errors)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.as_str().to_string(), n))
        .collect()
}

impl StepResult {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadResult {
    pub target: String,
    pub protocol: Protocol,
    /// "open" or "closed".
    pub mode: String,
    pub connections: usize,
    pub warmup_s: f64,
    pub steps: Vec<StepResult>,
    /// The run was cancelled: `steps` holds the ones that finished before it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
}

/// What one connection's worker measured in one step; merged into the step's result. The
/// per-second series is shared by the step's workers ([`Series`]).
pub(crate) struct WorkerRecord {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub requests: u64,
    pub errors: [u64; 6],
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub last_done: Option<Instant>,
    series: Arc<Mutex<Series>>,
}

impl WorkerRecord {
    pub fn new(series: Arc<Mutex<Series>>) -> WorkerRecord {
        WorkerRecord {
            latency: new_histogram(),
            service: new_histogram(),
            requests: 0,
            errors: [0; 6],
            bytes_sent: 0,
            bytes_received: 0,
            last_done: None,
            series,
        }
    }

    fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ok(
        &mut self,
        latency: Duration,
        service: Duration,
        done: Instant,
        sent: u64,
        rcvd: u64,
    ) {
        let l = micros(latency);
        self.latency.saturating_record(l);
        self.service.saturating_record(micros(service));
        self.requests += 1;
        self.bytes_sent += sent;
        self.bytes_received += rcvd;
        self.last_done = Some(done);
        let mut series = self.series();
        let s = series.at(done);
        s.requests += 1;
        s.bytes_sent += sent;
        s.bytes_received += rcvd;
        s.max = s.max.max(l);
        s.record(l);
    }

    pub fn error(&mut self, kind: ErrorKind, done: Instant) {
        self.errors[kind as usize] += 1;
        self.last_done = Some(done);
        let mut series = self.series();
        let s = series.at(done);
        s.errors += 1;
        s.kinds[kind as usize] += 1;
    }

    /// Stream bytes written (no request, no latency).
    pub fn bytes(&mut self, sent: u64, at: Instant) {
        self.bytes_sent += sent;
        self.series().at(at).bytes_sent += sent;
    }
}

/// One second of the series.
struct SecondAcc {
    requests: u64,
    errors: u64,
    kinds: [u64; 6],
    bytes_sent: u64,
    bytes_received: u64,
    max: u64,
    /// The latencies of the second while it can still get records (boxed: a sealed second
    /// then costs a pointer, not an empty histogram's header).
    hist: Option<Box<Histogram<u64>>>,
    /// Its percentiles once sealed: (p50, p99). A sealed second is a few dozen bytes, so a
    /// step of any length keeps a flat memory (a 30-minute soak step once kept 140 MiB, then
    /// 17 MiB, per load client).
    sealed: Option<(u64, u64)>,
}

impl SecondAcc {
    fn new() -> SecondAcc {
        SecondAcc {
            requests: 0,
            errors: 0,
            kinds: [0; 6],
            bytes_sent: 0,
            bytes_received: 0,
            max: 0,
            hist: None,
            sealed: None,
        }
    }

    /// A latency for the second's percentiles (counted only, once the second is sealed).
    fn record(&mut self, us: u64) {
        if self.sealed.is_none() {
            self.hist
                .get_or_insert_with(|| Box::new(new_series_histogram()))
                .saturating_record(us);
        }
    }

    fn seal(&mut self) {
        if self.sealed.is_none() {
            let q = |h: &Histogram<u64>, q| h.value_at_quantile(q);
            self.sealed = Some(
                self.hist
                    .take()
                    .map_or((0, 0), |h| (q(&h, 0.5), q(&h, 0.99))),
            );
        }
    }

    fn quantiles(&self) -> (u64, u64) {
        match (&self.sealed, &self.hist) {
            (Some(s), _) => *s,
            (None, Some(h)) => (h.value_at_quantile(0.5), h.value_at_quantile(0.99)),
            (None, None) => (0, 0),
        }
    }
}

/// Seconds stay open this long after a later one began: the workers of a step share the
/// series, and one finishing a request may be a little behind another.
const SEAL_AFTER_S: usize = 2;

/// The per-second series of one step, shared by its workers: one histogram per open second
/// (at most [`SEAL_AFTER_S`] + 1), percentiles only for the rest. A record arriving for a
/// second already sealed still counts (requests, errors, bytes, max), without moving its
/// percentiles.
pub(crate) struct Series {
    start: Instant,
    seconds: Vec<SecondAcc>,
    /// Seconds before this index are sealed.
    sealed: usize,
}

impl Series {
    pub fn new(start: Instant) -> Series {
        Series {
            start,
            seconds: Vec::new(),
            sealed: 0,
        }
    }

    fn at(&mut self, t: Instant) -> &mut SecondAcc {
        let i = t.saturating_duration_since(self.start).as_secs() as usize;
        let upto = i.saturating_sub(SEAL_AFTER_S).min(self.seconds.len());
        if upto > self.sealed {
            for s in &mut self.seconds[self.sealed..upto] {
                s.seal();
            }
            self.sealed = upto;
        }
        while self.seconds.len() <= i {
            self.seconds.push(SecondAcc::new());
        }
        &mut self.seconds[i]
    }

    /// Seconds still holding a histogram.
    #[cfg(test)]
    fn open_seconds(&self) -> usize {
        self.seconds.iter().filter(|s| s.hist.is_some()).count()
    }
}

/// Merges the workers of one step into its result.
pub(crate) fn step_result(
    target_rps: Option<f64>,
    step_duration: Duration,
    measure_start: Instant,
    workers: Vec<WorkerRecord>,
    unsent: u64,
    stream: bool,
) -> StepResult {
    let mut latency = new_histogram();
    let mut service = new_histogram();
    let (mut requests, mut bytes_sent, mut bytes_received) = (0, 0, 0);
    let mut errors = [0u64; 6];
    let mut last_done = measure_start + step_duration;
    let series = workers.first().map(|w| w.series.clone());
    for w in workers {
        let _ = latency.add(&w.latency);
        let _ = service.add(&w.service);
        requests += w.requests;
        bytes_sent += w.bytes_sent;
        bytes_received += w.bytes_received;
        for (a, b) in errors.iter_mut().zip(w.errors) {
            *a += b;
        }
        if let Some(d) = w.last_done {
            last_done = last_done.max(d);
        }
    }
    let series = series.map(|s| {
        let s = s.lock().unwrap_or_else(|e| e.into_inner());
        s.seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (p50_us, p99_us) = s.quantiles();
                IntervalSample {
                    second: i as u64,
                    requests: s.requests,
                    errors: s.errors,
                    errors_by_kind: error_map(s.kinds),
                    bytes_sent: s.bytes_sent,
                    bytes_received: s.bytes_received,
                    p50_us,
                    p99_us,
                    max_us: s.max,
                }
            })
            .collect()
    });
    errors[ErrorKind::Timeout as usize] += unsent;
    let duration_s = if stream {
        step_duration.as_secs_f64()
    } else {
        last_done.duration_since(measure_start).as_secs_f64()
    };
    let errors = error_map(errors);
    StepResult {
        target_rps,
        duration_s,
        requests,
        achieved_rps: if duration_s > 0.0 {
            requests as f64 / duration_s
        } else {
            0.0
        },
        bytes_sent,
        bytes_received,
        errors,
        latency: LatencySummary::from_histogram(&latency),
        service_time: LatencySummary::from_histogram(&service),
        throughput_bps: stream.then(|| bytes_sent as f64 / step_duration.as_secs_f64()),
        series: series.unwrap_or_default(),
        offset_s: 0.0,
        warmup: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_step_keeps_a_few_histograms_and_the_same_percentiles() {
        // Two workers, 600 seconds of 50 requests each: only the last few seconds hold a
        // histogram, and the per-second percentiles are the ones a full histogram per second
        // gives.
        let start = Instant::now();
        let series = Arc::new(Mutex::new(Series::new(start)));
        let mut workers = [
            WorkerRecord::new(series.clone()),
            WorkerRecord::new(series.clone()),
        ];
        let mut full: Vec<Histogram<u64>> = (0..600).map(|_| new_series_histogram()).collect();
        for sec in 0..600u64 {
            for k in 0..50u64 {
                for (w, rec) in workers.iter_mut().enumerate() {
                    let us = 100 + (sec * 37 + k * 11 + w as u64 * 5) % 900;
                    let at = start + Duration::from_millis(sec * 1000 + k * 10 + 5);
                    rec.ok(
                        Duration::from_micros(us),
                        Duration::from_micros(us),
                        at,
                        1,
                        1,
                    );
                    full[sec as usize].saturating_record(us);
                }
            }
            let open = series.lock().unwrap().open_seconds();
            assert!(open <= SEAL_AFTER_S + 1, "second {sec}: {open} open");
        }
        let r = step_result(
            Some(100.0),
            Duration::from_secs(600),
            start,
            workers.into(),
            0,
            false,
        );
        assert_eq!(r.series.len(), 600);
        for (s, h) in r.series.iter().zip(&full) {
            assert_eq!(s.requests, 100);
            assert_eq!(s.p50_us, h.value_at_quantile(0.5), "second {}", s.second);
            assert_eq!(s.p99_us, h.value_at_quantile(0.99), "second {}", s.second);
        }
    }

    #[test]
    fn histogram_roundtrip_keeps_percentiles() {
        let mut h = new_histogram();
        for v in 1..=100_000u64 {
            h.saturating_record(v * 7 % 250_000 + 1);
        }
        h.saturating_record(MAX_US * 2);
        let s = LatencySummary::from_histogram(&h);
        assert!(
            s.histogram.starts_with("HISTFAAA"),
            "{}",
            &s.histogram[..10]
        );
        let back = s.decode_histogram().expect("decodes");
        assert_eq!(back.len(), h.len());
        for q in [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(back.value_at_quantile(q), h.value_at_quantile(q), "q {q}");
        }
        assert_eq!(LatencySummary::from_histogram(&back), s);
        assert_eq!(s.max_us, h.max());
        assert!(s.max_us >= MAX_US && s.max_us < MAX_US + MAX_US / 500);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        a.saturating_record(100);
        b.saturating_record(1000);
        b.saturating_record(1000);
        let (a, b) = (
            LatencySummary::from_histogram(&a),
            LatencySummary::from_histogram(&b),
        );
        let m = LatencySummary::merge([&a, &b]).expect("merges");
        assert_eq!(m.count, 3);
        assert_eq!(m.p50_us, 1000);
        let bad = LatencySummary {
            histogram: "nope".into(),
            ..a
        };
        assert!(bad.decode_histogram().is_err());
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = LatencySummary::from_histogram(&new_histogram());
        assert_eq!((s.count, s.p99_us, s.max_us, s.mean_us), (0, 0, 0, 0.0));
        assert_eq!(s.decode_histogram().map(|h| h.len()).ok(), Some(0));
    }
}
