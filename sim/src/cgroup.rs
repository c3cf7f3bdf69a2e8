//! CPU quotas for components (`resources.limits.cpu`), with cgroups. Needs real root.
//!
//! A component's threads are moved into `<cpu controller>/meshsim-<pid>/<component>` whose CFS
//! quota is the limit. cgroup directories are host state that the kernel does not remove when
//! the process dies, so each start also removes the groups of meshsim processes that are gone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const PERIOD_US: u64 = 100_000;

#[derive(Debug)]
pub struct CpuCgroup {
    path: PathBuf,
    v2: bool,
}

/// The cpu controller's mount: cgroup v1 `cpu` hierarchy, or the v2 unified one.
fn controller_root() -> Option<(PathBuf, bool)> {
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    if v1.join("cpu.cfs_quota_us").exists() {
        return Some((v1.to_path_buf(), false));
    }
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
    controllers
        .split_whitespace()
        .any(|c| c == "cpu")
        .then(|| (v2.to_path_buf(), true))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Removes the groups left by meshsim processes that no longer run.
pub fn remove_stale() {
    let Some((root, _)) = controller_root() else {
        return;
    };
    let Ok(entries) = fs::read_dir(&root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("meshsim-") else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        if let Ok(children) = fs::read_dir(e.path()) {
            for c in children.flatten() {
                if c.path().is_dir() {
                    let _ = fs::remove_dir(c.path());
                }
            }
        }
        let _ = fs::remove_dir(e.path());
    }
}

impl CpuCgroup {
    /// Creates the group of `component` with a quota of `millis` millicores.
    pub fn create(component: &str, millis: u32) -> io::Result<CpuCgroup> {
        let (root, v2) = controller_root().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup cpu controller is mounted",
            )
        })?;
        let parent = root.join(format!("meshsim-{}", std::process::id()));
        if !parent.exists() {
            remove_stale();
            fs::create_dir(&parent)?;
            if v2 {
                let _ = fs::write(parent.join("cgroup.subtree_control"), "+cpu");
            }
        }
        let path = parent.join(sanitize(component));
        fs::create_dir_all(&path)?;
        let quota = u64::from(millis) * PERIOD_US / 1000;
        if v2 {
            // Threads of one process in different groups need threaded mode.
            let _ = fs::write(path.join("cgroup.type"), "threaded");
            fs::write(path.join("cpu.max"), format!("{quota} {PERIOD_US}"))?;
        } else {
            fs::write(path.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
            fs::write(path.join("cpu.cfs_quota_us"), quota.to_string())?;
        }
        Ok(CpuCgroup { path, v2 })
    }

    /// Moves the calling thread into the group.
    pub fn add_current_thread(&self) -> io::Result<()> {
        self.add_thread(crate::os::gettid())
    }

    /// Moves thread `tid` of this process into the group.
    pub fn add_thread(&self, tid: i32) -> io::Result<()> {
        let file = if self.v2 { "cgroup.threads" } else { "tasks" };
        fs::write(self.path.join(file), tid.to_string())
    }

    /// Lifts the quota: the group's threads run unlimited.
    pub fn unlimit(&self) -> io::Result<()> {
        if self.v2 {
            fs::write(self.path.join("cpu.max"), format!("max {PERIOD_US}"))
        } else {
            fs::write(self.path.join("cpu.cfs_quota_us"), "-1")
        }
    }

    /// The periods in which the quota throttled the group, and for how long in all: the
    /// kernel's `cpu.stat`.
    pub fn throttled(&self) -> (u64, std::time::Duration) {
        let stat = fs::read_to_string(self.path.join("cpu.stat")).unwrap_or_default();
        let get = |k: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let time = if self.v2 {
            std::time::Duration::from_micros(get("throttled_usec "))
        } else {
            std::time::Duration::from_nanos(get("throttled_time "))
        };
        (get("nr_throttled "), time)
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        // Succeeds once the component's threads have exited; the parent goes with the last one.
        let _ = fs::remove_dir(&self.path);
        if let Some(parent) = self.path.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}
