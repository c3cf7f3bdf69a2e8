//! A component instance — an app replica, a sidecar, a ztunnel, a waypoint, a load client —
//! and the OS threads it runs on.
//!
//! Each component gets its own tokio runtime whose every thread (workers and blocking pool)
//! enters the component's network namespace when it starts and registers its thread id. That
//! gives each component sockets in the right namespace, and lets the meters charge CPU time per
//! thread (`/proc/self/task/<tid>/schedstat`) to exactly one component.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cgroup::CpuCgroup;
use crate::netns::NetNsRef;
use crate::os::{gettid, heap, thread_cpu_ns};

pub use results::run::ComponentKind;

/// What a component counts of its own work, sampled by the meter each interval beside its CPU
/// and heap: CPU per request is then a measurement divided by a measurement, both of one
/// component over one window.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests handled (L7), or request/response exchanges relayed (L4); see
    /// `results::interpret::requests_are` for what each kind counts. Shared, so a load
    /// client's engine can count into it directly.
    pub requests: Arc<AtomicU64>,
    pub connections_opened: AtomicU64,
    pub connections_active: AtomicU64,
    /// Full mTLS handshakes the proxy made, either side (see `mesh::tls::Handshakes`);
    /// shared with the proxy's TLS configs, which count them.
    pub tls_handshakes: crate::mesh::tls::Handshakes,
    /// CPU burned to reach the cost profile's floor, ns (part of the component's CPU).
    pub floor_burned_ns: AtomicU64,
    /// Memory the cost profile gives the component right now, bytes; 0: none.
    pub profile_memory_bytes: AtomicU64,
    /// Accept calls that failed (the loop logged, backed off and went on).
    pub accept_errors: AtomicU64,
}

impl Counters {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// Hook run on every thread of a component when it starts (after entering the namespace).
/// Metering installs one to pick the component's allocator arena or cgroup.
pub type ThreadHook = Arc<dyn Fn(&Component) + Send + Sync>;

/// A CPU limit (`resources.limits.cpu`) and whether it is enforced.
#[derive(Debug)]
pub struct CpuLimit {
    pub millis: u32,
    /// The cgroup enforcing it; `None` when it cannot be (no real root): reported as such.
    pub cgroup: Option<CpuCgroup>,
}

/// One component instance and the threads it owns.
pub struct Component {
    pub name: String,
    pub kind: ComponentKind,
    pub netns: NetNsRef,
    /// The jemalloc arena this component's threads allocate from (its heap meter).
    arena: Option<u32>,
    limit: Option<CpuLimit>,
    threads: Mutex<Vec<i32>>,
    /// CPU nanoseconds of threads that have already exited (so their work stays charged).
    exited_cpu_ns: AtomicU64,
    /// Its own count of its work.
    pub counters: Arc<Counters>,
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("netns", &self.netns.name())
            .finish()
    }
}

impl Component {
    pub fn new(name: impl Into<String>, kind: ComponentKind, netns: NetNsRef) -> Arc<Component> {
        Self::with_limit(name, kind, netns, None, false)
    }

    /// A component with a CPU limit in millicores, enforced by a cgroup when `enforce` (real
    /// root) and the cgroup can be made; otherwise recorded as not enforced.
    pub fn with_limit(
        name: impl Into<String>,
        kind: ComponentKind,
        netns: NetNsRef,
        cpu_limit_millis: Option<u32>,
        enforce: bool,
    ) -> Arc<Component> {
        let name = name.into();
        let limit = cpu_limit_millis.map(|millis| CpuLimit {
            millis,
            cgroup: if enforce {
                match CpuCgroup::create(&format!("{kind}-{name}"), millis) {
                    Ok(g) => Some(g),
                    Err(e) => {
                        tracing::warn!(component = %name, error = %e, "CPU limit not enforced");
                        None
                    }
                }
            } else {
                None
            },
        });
        Arc::new(Component {
            name,
            kind,
            netns,
            arena: heap::create_arena(),
            limit,
            threads: Mutex::new(Vec::new()),
            exited_cpu_ns: AtomicU64::new(0),
            counters: Arc::default(),
        })
    }

    pub fn arena(&self) -> Option<u32> {
        self.arena
    }

    pub fn cpu_limit_millis(&self) -> Option<u32> {
        self.limit.as_ref().map(|l| l.millis)
    }

    /// Whether the CPU limit is enforced (false when there is none or it cannot be).
    pub fn cpu_limit_enforced(&self) -> bool {
        self.limit.as_ref().is_some_and(|l| l.cgroup.is_some())
    }

    /// Makes the calling thread one of this component's: registered for CPU metering, its
    /// allocations charged to the component's arena, and under its CPU quota.
    pub fn adopt_current_thread(&self) {
        self.register_current_thread();
        if let Some(a) = self.arena {
            heap::bind_thread(a);
        }
        if let Some(g) = self.limit.as_ref().and_then(|l| l.cgroup.as_ref())
            && let Err(e) = g.add_current_thread()
        {
            tracing::warn!(component = %self.name, error = %e, "thread not under CPU quota");
        }
    }

    /// Puts thread `tid` back under the component's own CPU quota, if it has one.
    pub fn rejoin_own_cgroup(&self, tid: i32) {
        if let Some(g) = self.limit.as_ref().and_then(|l| l.cgroup.as_ref()) {
            let _ = g.add_thread(tid);
        }
    }

    /// Thread ids currently running for this component.
    pub fn threads(&self) -> Vec<i32> {
        self.threads.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Total CPU time charged to this component so far, live and exited threads.
    pub fn cpu_ns(&self) -> u64 {
        let live: u64 = self.threads().into_iter().filter_map(thread_cpu_ns).sum();
        live + self.exited_cpu_ns.load(Ordering::Relaxed)
    }

    /// Registers the calling thread as one of this component's. Call from the thread itself.
    pub fn register_current_thread(&self) {
        if let Ok(mut t) = self.threads.lock() {
            t.push(gettid());
        }
    }

    /// Unregisters the calling thread, keeping the CPU it used charged.
    pub fn unregister_current_thread(&self) {
        let tid = gettid();
        if let Some(ns) = thread_cpu_ns(tid) {
            self.exited_cpu_ns.fetch_add(ns, Ordering::Relaxed);
        }
        if let Ok(mut t) = self.threads.lock() {
            t.retain(|&x| x != tid);
        }
    }

    /// Starts a tokio runtime for this component: `workers` worker threads, each inside the
    /// component's network namespace and registered as the component's.
    pub fn start_runtime(
        self: &Arc<Self>,
        workers: usize,
        hook: Option<ThreadHook>,
    ) -> io::Result<ComponentRuntime> {
        let on_start = {
            let c = self.clone();
            let hook = hook.clone();
            move || {
                // A thread that cannot enter its namespace would open sockets in the wrong
                // place: better to crash loudly than to measure the wrong thing.
                if let Err(e) = c.netns.enter() {
                    panic!("component {}: {e}", c.name);
                }
                c.adopt_current_thread();
                if let Some(h) = &hook {
                    h(&c);
                }
            }
        };
        let on_stop = {
            let c = self.clone();
            move || c.unregister_current_thread()
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .max_blocking_threads(4)
            .thread_name(format!("{}-{}", self.kind, self.name))
            .on_thread_start(on_start)
            .on_thread_stop(on_stop)
            .enable_all()
            .build()?;
        Ok(ComponentRuntime {
            component: self.clone(),
            rt: Some(rt),
        })
    }
}

/// A component's running runtime. Dropping it stops the component's tasks and threads.
pub struct ComponentRuntime {
    pub component: Arc<Component>,
    rt: Option<tokio::runtime::Runtime>,
}

impl ComponentRuntime {
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt
            .as_ref()
            .expect("runtime is present until drop")
            .handle()
    }

    /// Runs a future on the component's threads (so its sockets open in the component's
    /// namespace) and waits for it from a plain thread.
    pub fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.handle().block_on(self.spawn(f)) {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("component {} task was cancelled: {e}", self.component.name),
        }
    }

    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(f)
    }
}

impl Drop for ComponentRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_clock_agrees_with_schedstat() {
        let tid = gettid();
        let before = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .expect("schedstat");
        let clock = thread_cpu_ns(tid).expect("clock");
        let after = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .expect("schedstat");
        assert!(
            before <= clock && clock <= after,
            "{before} <= {clock} <= {after}"
        );
    }
}
