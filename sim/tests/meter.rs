//! Metering is exact where it can be checked: known CPU burned on a component's thread, and a
//! known heap held by a component while others allocate too.

use std::sync::Arc;
use std::time::Duration;

use sim::component::{Component, ComponentKind};
use sim::meter::Meter;
use sim::netns::NetNs;
use sim::os::heap;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn host() -> Arc<NetNs> {
    Arc::new(NetNs::current("host").expect("open this thread's namespace"))
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Spins until the calling thread has used `d` more CPU.
fn burn(d: Duration) {
    let until = thread_cpu() + d;
    while thread_cpu() < until {
        std::hint::spin_loop();
    }
}

#[test]
fn cpu_burned_on_a_component_thread_is_charged_to_it() {
    let busy = Component::new("busy", ComponentKind::Sidecar, host());
    let idle = Component::new("idle", ComponentKind::App, host());
    let busy_rt = busy.start_runtime(1, None).expect("runtime");
    let _idle_rt = idle.start_runtime(1, None).expect("runtime");
    let meter = Meter::start(
        vec![busy.clone(), idle.clone()],
        Duration::from_millis(100),
        std::time::Instant::now(),
    )
    .expect("meter");
    let before = busy.cpu_ns();
    busy_rt.run(async { burn(Duration::from_millis(600)) });
    let charged = (busy.cpu_ns() - before) as f64 / 1e9;
    assert!(
        (charged - 0.6).abs() <= 0.6 * 0.05,
        "burned 0.600 s of CPU, charged {charged:.3} s"
    );
    let report = meter.finish();
    let mut prev = 0.0;
    let busy_total: f64 = report.components[0]
        .vcpu
        .iter()
        .zip(&report.t_s)
        .map(|(v, &t)| {
            let dt = t - prev;
            prev = t;
            v * dt
        })
        .sum();
    assert!(
        (busy_total - 0.6).abs() <= 0.6 * 0.1,
        "series total {busy_total:.3} s for 0.6 s burned"
    );
    let idle_vcpu = report.components[1]
        .vcpu
        .iter()
        .copied()
        .fold(0.0, f64::max);
    assert!(idle_vcpu < 0.02, "idle component charged {idle_vcpu}");
}

#[test]
fn a_components_own_counts_are_sampled_with_its_cpu() {
    use std::sync::atomic::Ordering;
    let proxy = Component::new("proxy", ComponentKind::Ztunnel, host());
    let origin = std::time::Instant::now();
    let meter =
        Meter::start(vec![proxy.clone()], Duration::from_millis(100), origin).expect("meter");
    let k = &proxy.counters;
    for _ in 0..1000 {
        k.request();
    }
    k.connections_opened.fetch_add(3, Ordering::Relaxed);
    k.connections_active.store(3, Ordering::Relaxed);
    k.profile_memory_bytes.store(12 << 20, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(350));
    for _ in 0..500 {
        k.request();
    }
    let report = meter.finish();
    let s = &report.components[0];
    assert_eq!(
        s.requests.iter().sum::<u64>(),
        1500,
        "every request in some interval"
    );
    assert!(
        s.requests.iter().filter(|&&n| n > 0).count() >= 2,
        "{:?}",
        s.requests
    );
    assert_eq!(s.connections_opened.iter().sum::<u64>(), 3);
    assert_eq!(s.connections_active.last(), Some(&3));
    assert_eq!(s.profile_mib.last(), Some(&12.0));
    // One time line: every series has a point per interval, the first about 0.1 s after the
    // origin and the last at most a little after the meter stopped.
    assert_eq!(s.vcpu.len(), report.t_s.len());
    assert_eq!(s.requests.len(), report.t_s.len());
    assert!(
        report.t_s[0] > 0.05 && report.t_s[0] < 0.5,
        "{:?}",
        report.t_s
    );
    assert!(*report.t_s.last().unwrap() <= origin.elapsed().as_secs_f64());
}

#[test]
fn heap_held_by_a_component_is_charged_to_it() {
    assert!(heap::active(), "jemalloc must be the global allocator here");
    let holder = Component::new("holder", ComponentKind::Waypoint, host());
    let other = Component::new("other", ComponentKind::Ztunnel, host());
    let holder_rt = holder.start_runtime(1, None).expect("runtime");
    let other_rt = other.start_runtime(1, None).expect("runtime");
    const MIB: usize = 1024 * 1024;
    // The other component allocates and frees constantly while the holder holds 100 MiB.
    let churn = other_rt.spawn(async {
        let mut keep = Vec::new();
        for i in 0..2000 {
            keep.push(vec![i as u8; 64 * 1024]);
            if keep.len() > 300 {
                keep.drain(..150);
            }
            tokio::task::yield_now().await;
        }
        keep
    });
    let held = holder_rt.run(async {
        let mut v: Vec<Vec<u8>> = Vec::new();
        for _ in 0..100 {
            v.push(vec![7u8; MIB]);
        }
        v
    });
    heap::refresh();
    let charged =
        heap::arena_allocated(holder.arena().expect("arena")).expect("stats") as f64 / MIB as f64;
    assert!(
        (charged - 100.0).abs() <= 2.0,
        "holding 100 MiB, charged {charged:.2} MiB"
    );
    let kept = other_rt.run(churn).expect("churn task");
    heap::refresh();
    let other_mib =
        heap::arena_allocated(other.arena().expect("arena")).expect("stats") as f64 / MIB as f64;
    let want = (kept.len() * 64 * 1024) as f64 / MIB as f64;
    assert!(
        (other_mib - want).abs() <= want * 0.05 + 0.5,
        "the other component holds {want:.2} MiB, charged {other_mib:.2} MiB"
    );
    drop(held);
}
