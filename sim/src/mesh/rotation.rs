//! Certificate renewal, as the proxies' certificate managers and istiod's CA do it together:
//! each workload certificate is renewed at half its life; while istiod is unavailable a renewal
//! fails and is retried with ztunnel's backoff, the old certificate stays in use until it runs
//! out, and from then on every new mTLS handshake presenting it fails (the peer's verifier
//! checks `notAfter`) until a retry finds istiod back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::ca::{Ca, WorkloadCert};

/// ztunnel's renewal backoff after a failed fetch: 1 s, doubling, capped at 150 s
/// (istio/ztunnel src/identity/manager.rs: `current_interval: 1s`, `multiplier: 2.0`,
/// `CERT_REFRESH_FAILURE_RETRY_DELAY_MAX_INTERVAL`). ztunnel also randomizes each delay by
/// ±20%; meshsim does not, so a replay renews at the same moments.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(150);

/// How often the renewer looks at the clock: well under any TTL meshsim accepts (2 s).
const TICK: Duration = Duration::from_millis(100);

/// What renewal did, for a fault's figures.
#[derive(Debug, Default)]
pub struct RotationStats {
    pub renewed: AtomicU64,
    /// Attempts that found istiod unavailable.
    pub failed: AtomicU64,
    /// Certificates that ran out before a renewal reached them.
    pub expired: AtomicU64,
}

impl RotationStats {
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.renewed.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.expired.load(Ordering::Relaxed),
        )
    }
}

/// The renewing thread; stops when dropped.
pub struct Rotator {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub stats: Arc<RotationStats>,
}

struct Tracked {
    cert: WorkloadCert,
    next: SystemTime,
    backoff: Option<Duration>,
    expired: bool,
}

impl Rotator {
    /// Renews each of `certs` (one per identity) from `ca` for as long as it runs, failing
    /// while `istiod_down` is set.
    pub fn start(
        ca: Ca,
        certs: Vec<WorkloadCert>,
        istiod_down: Arc<AtomicBool>,
    ) -> std::io::Result<Rotator> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(RotationStats::default());
        let mut tracked: Vec<Tracked> = certs
            .into_iter()
            .map(|cert| Tracked {
                next: cert.current().refresh_at(),
                cert,
                backoff: None,
                expired: false,
            })
            .collect();
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("cert-rotation".into())
                .spawn(move || {
                    let _span = tracing::info_span!("cert-rotation").entered();
                    while !stop.load(Ordering::Relaxed) {
                        let now = SystemTime::now();
                        for t in &mut tracked {
                            t.step(now, &ca, istiod_down.load(Ordering::Relaxed), &stats);
                        }
                        std::thread::sleep(TICK);
                    }
                })?
        };
        Ok(Rotator {
            stop,
            thread: Some(thread),
            stats,
        })
    }
}

impl Tracked {
    fn step(&mut self, now: SystemTime, ca: &Ca, istiod_down: bool, stats: &RotationStats) {
        let current = self.cert.current();
        let expiry = current.expires;
        if !self.expired && now >= expiry {
            self.expired = true;
            stats.expired.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(id = %self.cert.identity(), "certificate expired before it could be renewed; new mTLS connections presenting it fail");
        }
        if now < self.next {
            return;
        }
        if !istiod_down && ca.renew(&self.cert).is_ok() {
            stats.renewed.fetch_add(1, Ordering::Relaxed);
            self.backoff = None;
            self.expired = false;
            self.next = self.cert.current().refresh_at();
            tracing::debug!(id = %self.cert.identity(), "certificate renewed");
            return;
        }
        stats.failed.fetch_add(1, Ordering::Relaxed);
        let delay = self.backoff.unwrap_or(FIRST_RETRY);
        self.backoff = Some((delay * 2).min(MAX_RETRY));
        let retry = now + delay;
        // As ztunnel: a still-valid certificate is retained, and retried no later than its
        // expiry; one already gone waits out the backoff.
        self.next = if now < expiry {
            tracing::info!(id = %self.cert.identity(), "certificate renewal failed (istiod unavailable); retaining existing valid certificate until it expires; next retry in {delay:?}");
            retry.min(expiry)
        } else {
            tracing::warn!(id = %self.cert.identity(), "certificate fetch failed (istiod unavailable) and no valid existing certificate; will retry in {delay:?}");
            retry
        };
    }
}

impl Drop for Rotator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::Identity;

    fn tracked(ca: &Ca, ttl: Duration) -> Tracked {
        let cert = ca.issue(&Identity::new("ns", "sa"), ttl).expect("issue");
        Tracked {
            next: cert.current().refresh_at(),
            cert,
            backoff: None,
            expired: false,
        }
    }

    #[test]
    fn renews_at_half_life_and_backs_off_while_istiod_is_down() {
        let ca = Ca::new().expect("ca");
        let stats = RotationStats::default();
        let mut t = tracked(&ca, Duration::from_secs(10));
        let issued = t.cert.current().issued_at;
        // Before half-life nothing happens.
        t.step(issued + Duration::from_secs(4), &ca, false, &stats);
        assert_eq!(stats.snapshot(), (0, 0, 0));
        // At half-life with istiod down: a failure, retried 1 s later, then 2 s after that.
        t.step(issued + Duration::from_secs(5), &ca, true, &stats);
        assert_eq!(t.next, issued + Duration::from_secs(6));
        t.step(issued + Duration::from_secs(6), &ca, true, &stats);
        assert_eq!(t.next, issued + Duration::from_secs(8));
        t.step(issued + Duration::from_secs(8), &ca, true, &stats);
        // The next would be 4 s later, past expiry: retried at expiry instead, which is within
        // the second after `issued + ttl` (X.509 keeps whole seconds).
        let expires = t.cert.current().expires;
        assert!(expires > issued + Duration::from_secs(10));
        assert!(expires <= issued + Duration::from_secs(11));
        assert_eq!(t.next, expires);
        t.step(expires, &ca, true, &stats);
        assert_eq!(stats.snapshot(), (0, 4, 1));
        assert!(t.cert.current().expired_at(expires));
        // istiod back: the next retry renews, and the new certificate is current.
        let retry = t.next;
        t.step(retry, &ca, false, &stats);
        assert_eq!(stats.snapshot(), (1, 4, 1));
        let now = t.cert.current();
        assert!(now.issued_at > issued && !now.expired_at(SystemTime::now()));
        assert_eq!(t.next, now.refresh_at());
    }
}
