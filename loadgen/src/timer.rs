//! A sleep precise to microseconds, for the open-loop schedule.
//!
//! Tokio's timers tick in milliseconds: at 5000 rps the spacing is 200 µs, and every bit a
//! request leaves late is added to its measured latency. A timerfd per worker, awaited through
//! the reactor, wakes within a few microseconds without spinning a core (timerfd expiries get
//! no timer slack, unlike nanosleep).
//!
//! Waking a parked thread still takes tens of microseconds on a VM, so the timer learns that
//! delay and fires that much early, then yields until the exact time: a short spin paid only
//! for the wakeup's own jitter.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub(crate) struct PreciseTimer {
    fd: AsyncFd<Fd>,
    /// Moving average of how late the timer wakes us, in nanoseconds.
    late_ns: u64,
}

/// Never spin longer than this before an intended time, however slow wakeups get.
const MAX_LEAD: Duration = Duration::from_micros(250);

/// Closer than this, a wakeup would cost more than it saves: go now.
const MIN_SLEEP: Duration = Duration::from_micros(2);

impl PreciseTimer {
    pub fn new() -> io::Result<PreciseTimer> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: `TimerFd` owns its descriptor and closes it only when dropped, which happens
        // with the AsyncFd; `Fd::as_raw_fd` always returns that same descriptor.
        let fd = unsafe { AsyncFd::register(Fd(fd))? };
        Ok(PreciseTimer { fd, late_ns: 0 })
    }

    /// Returns at `t` or just after it.
    pub async fn sleep_until(&mut self, t: Instant) -> io::Result<()> {
        // Fire early by 1.5x the usual lateness: most wakeups then land before `t`.
        let lead = Duration::from_nanos(self.late_ns * 3 / 2).min(MAX_LEAD);
        let wake = t.checked_sub(lead).unwrap_or(t);
        if wake > Instant::now() + MIN_SLEEP {
            self.sleep_exact(wake).await?;
            let late = Instant::now().saturating_duration_since(wake);
            let late = u64::try_from(late.as_nanos())
                .unwrap_or(u64::MAX)
                .min(1_000_000);
            self.late_ns = (self.late_ns * 7 + late) / 8;
        }
        while Instant::now() < t {
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    async fn sleep_exact(&mut self, t: Instant) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if t <= now + MIN_SLEEP {
                return Ok(());
            }
            // Relative to `now`: Instant is CLOCK_MONOTONIC, but not convertible to a timespec.
            self.fd
                .get_ref()
                .0
                .set(
                    Expiration::OneShot(TimeSpec::from(t - now)),
                    TimerSetTimeFlags::empty(),
                )
                .map_err(io::Error::from)?;
            let mut guard = self.fd.readable().await?;
            let mut buf = [0u8; 8];
            match nix::unistd::read(guard.get_inner().0.as_fd(), &mut buf) {
                // Expired: nothing more can arrive until the next `set`.
                Ok(_) => {
                    guard.clear_ready();
                    return Ok(());
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_on_time() {
        let mut t = PreciseTimer::new().expect("timerfd");
        let mut late = Vec::new();
        for _ in 0..50 {
            let at = Instant::now() + Duration::from_micros(300);
            t.sleep_until(at).await.expect("sleeps");
            let now = Instant::now();
            assert!(now >= at);
            late.push(now - at);
        }
        late.sort();
        // The median is what matters; a shared machine may delay a few.
        assert!(late[25] < Duration::from_micros(500), "{late:?}");
    }
}
