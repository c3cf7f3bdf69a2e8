//! What meshsim reads from the OS about itself, with no knowledge of components: thread and
//! process CPU clocks, thread ids, and jemalloc's per-arena heap statistics. A leaf, so the
//! component, cgroup, meter and cost modules all build on it without importing each other.

/// CPU time a thread of this process has run, in nanoseconds: the scheduler's
/// `sum_exec_runtime`, the first field of `/proc/self/task/<tid>/schedstat`. Read through the
/// thread's CPU clock (one syscall, no file to open: metering hundreds of threads each second
/// stays far below 1% of a core); the schedstat file is the fallback.
pub fn thread_cpu_ns(tid: i32) -> Option<u64> {
    // The kernel's per-thread scheduler clock id: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
    let clock = ((!(tid as libc::clockid_t)) << 3) | 4 | 2;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain syscall writing into a valid timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } == 0 {
        return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
    }
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

pub fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// CPU time of the whole process in ns (all threads, live and exited).
pub fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain syscall writing into a valid timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of the calling thread in ns (user and kernel).
pub fn current_thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain syscall writing into a valid timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// jemalloc control: arenas per component and their statistics.
pub mod heap {
    use std::sync::OnceLock;

    /// Whether allocations of this program go through jemalloc (checked once, by allocating).
    pub fn active() -> bool {
        static ACTIVE: OnceLock<bool> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let before = thread_allocated();
            let v = std::hint::black_box(vec![1u8; 256 * 1024]);
            let after = thread_allocated();
            drop(v);
            matches!((before, after), (Some(b), Some(a)) if a >= b + 256 * 1024)
        })
    }

    fn thread_allocated() -> Option<u64> {
        let _ = tikv_jemalloc_ctl::epoch::advance();
        tikv_jemalloc_ctl::thread::allocatedp::read()
            .ok()
            .map(|p| p.get())
    }

    /// A new arena for one component, or `None` when jemalloc is not the allocator.
    pub fn create_arena() -> Option<u32> {
        if !active() {
            return None;
        }
        // SAFETY: `arenas.create` is a read-only-style mallctl returning an unsigned index.
        unsafe { tikv_jemalloc_ctl::raw::read::<u32>(b"arenas.create\0").ok() }
    }

    /// Makes the calling thread allocate from `arena` from now on.
    pub fn bind_thread(arena: u32) {
        // SAFETY: `thread.arena` takes an unsigned arena index.
        unsafe {
            let _ = tikv_jemalloc_ctl::raw::write::<u32>(b"thread.arena\0", arena);
        }
    }

    /// Refreshes jemalloc's statistics snapshot; call once before reading a batch.
    pub fn refresh() {
        let _ = tikv_jemalloc_ctl::epoch::advance();
    }

    /// Bytes allocated and not yet freed from `arena` (small and large objects).
    pub fn arena_allocated(arena: u32) -> Option<u64> {
        let read = |what: &str| -> Option<u64> {
            let name = format!("stats.arenas.{arena}.{what}.allocated\0");
            // SAFETY: these statistics are `size_t`.
            unsafe { tikv_jemalloc_ctl::raw::read::<usize>(name.as_bytes()).ok() }.map(|v| v as u64)
        };
        Some(read("small")? + read("large")?)
    }

    /// Bytes allocated by the whole process.
    pub fn total_allocated() -> Option<u64> {
        tikv_jemalloc_ctl::stats::allocated::read()
            .ok()
            .map(|v| v as u64)
    }
}
