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

use crate::netns::NetNsRef;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    App,
    Sidecar,
    Ztunnel,
    Waypoint,
    LoadClient,
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComponentKind::App => "app",
            ComponentKind::Sidecar => "sidecar",
            ComponentKind::Ztunnel => "ztunnel",
            ComponentKind::Waypoint => "waypoint",
            ComponentKind::LoadClient => "load-client",
        })
    }
}

/// Hook run on every thread of a component when it starts (after entering the namespace).
/// Metering installs one to pick the component's allocator arena or cgroup.
pub type ThreadHook = Arc<dyn Fn(&Component) + Send + Sync>;

/// One component instance and the threads it owns.
pub struct Component {
    pub name: String,
    pub kind: ComponentKind,
    pub netns: NetNsRef,
    threads: Mutex<Vec<i32>>,
    /// CPU nanoseconds of threads that have already exited (so their work stays charged).
    exited_cpu_ns: AtomicU64,
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

/// CPU time a thread has run, in nanoseconds (first field of its schedstat).
pub fn thread_cpu_ns(tid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

pub fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

impl Component {
    pub fn new(name: impl Into<String>, kind: ComponentKind, netns: NetNsRef) -> Arc<Component> {
        Arc::new(Component {
            name: name.into(),
            kind,
            netns,
            threads: Mutex::new(Vec::new()),
            exited_cpu_ns: AtomicU64::new(0),
        })
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
                c.register_current_thread();
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
