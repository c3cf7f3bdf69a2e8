//! The sandbox every cluster lives in.
//!
//! Before any thread exists, the process moves into a private mount namespace (and, when not
//! root, a user namespace that maps the caller to root). There it mounts fresh tmpfs over
//! `/run/netns` and `/etc/netns`, so every network namespace meshsim names, and every hosts
//! file it writes, exist only inside this process's view of the file system. When the process
//! ends — normally, on Ctrl-C, on panic or by SIGKILL — the kernel drops the mount namespace,
//! the namespaces lose their last reference and are freed: nothing to clean up, nothing leaks
//! to the host.

use std::fs;
use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid};

/// Where named network namespaces live (as `ip netns` expects them).
pub const NETNS_DIR: &str = "/run/netns";
/// Where per-namespace configuration files live (as `ip netns exec` expects them).
pub const ETC_NETNS_DIR: &str = "/etc/netns";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot create a user namespace as uid {uid}: {source}. meshsim needs either root or \
         unprivileged user namespaces. Run it with sudo, or allow user namespaces: \
         `sysctl -w kernel.unprivileged_userns_clone=1` (Debian), \
         `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 24.04+), or raise \
         `user.max_user_namespaces` if it is 0"
    )]
    UserNs { uid: u32, source: nix::Error },
    #[error(
        "cannot create a private mount namespace: {0}; run meshsim as root or allow user namespaces"
    )]
    MountNs(nix::Error),
    #[error("sandbox setup failed at {step}: {source}")]
    Setup { step: String, source: io::Error },
    #[error(
        "the sandbox must be entered before any thread starts (found {0} threads); \
         this is a bug in meshsim"
    )]
    Threaded(usize),
}

/// What the sandbox is made of; `exec` needs to know whether to enter a user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sandbox {
    /// True when the process runs in a user namespace of its own (started without root).
    pub user_namespace: bool,
    /// The real uid that started meshsim.
    pub host_uid: u32,
}

impl Sandbox {
    /// With real root, cgroup CPU quotas can be enforced; in a user namespace they cannot.
    pub fn is_real_root(&self) -> bool {
        !self.user_namespace && self.host_uid == 0
    }
}

fn step<T>(what: &str, r: Result<T, nix::Error>) -> Result<T, SandboxError> {
    r.map_err(|e| SandboxError::Setup {
        step: what.to_string(),
        source: io::Error::from(e),
    })
}

fn step_io<T>(what: &str, r: io::Result<T>) -> Result<T, SandboxError> {
    r.map_err(|e| SandboxError::Setup {
        step: what.to_string(),
        source: e,
    })
}

/// Number of threads of this process (from `/proc/self/status`).
pub fn thread_count() -> usize {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(1)
}

/// Enters the sandbox. Must be called while the process has exactly one thread (user namespaces
/// cannot be entered by a multi-threaded process, and every later thread must inherit the
/// private mount namespace).
pub fn enter() -> Result<Sandbox, SandboxError> {
    let threads = thread_count();
    if threads != 1 {
        return Err(SandboxError::Threaded(threads));
    }
    let uid = Uid::current();
    let gid = Gid::current();
    let user_namespace = !Uid::effective().is_root();
    if user_namespace {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(|source| {
            SandboxError::UserNs {
                uid: uid.as_raw(),
                source,
            }
        })?;
        // Mapping ourselves to root in the new namespace gives the capabilities needed to
        // create network namespaces, veths and mounts there — and nowhere else.
        step_io(
            "write /proc/self/setgroups",
            fs::write("/proc/self/setgroups", "deny"),
        )?;
        step_io(
            "write /proc/self/uid_map",
            fs::write("/proc/self/uid_map", format!("0 {} 1", uid.as_raw())),
        )?;
        step_io(
            "write /proc/self/gid_map",
            fs::write("/proc/self/gid_map", format!("0 {} 1", gid.as_raw())),
        )?;
    } else {
        unshare(CloneFlags::CLONE_NEWNS).map_err(SandboxError::MountNs)?;
    }
    // Nothing mounted from now on may propagate back to the host.
    step(
        "make / private",
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
    )?;
    private_dirs(&[Path::new(NETNS_DIR), Path::new(ETC_NETNS_DIR)])?;
    Ok(Sandbox {
        user_namespace,
        host_uid: uid.as_raw(),
    })
}

/// Makes each directory a fresh, private tmpfs. A directory that does not exist on the host is
/// made to exist only in this mount namespace: its parent gets an overlay whose upper layer is a
/// private tmpfs, so the host's file system is never written.
fn private_dirs(dirs: &[&Path]) -> Result<(), SandboxError> {
    let missing: Vec<&Path> = dirs.iter().copied().filter(|d| !d.is_dir()).collect();
    if !missing.is_empty() {
        // A scratch tmpfs holds the overlays' upper and work directories. It is mounted over
        // /tmp only for a moment (in this namespace) and detached again; the overlays keep it.
        let scratch = Path::new("/tmp");
        mount_tmpfs(scratch, "scratch tmpfs")?;
        for (i, dir) in missing.iter().enumerate() {
            let parent = dir.parent().unwrap_or(Path::new("/"));
            let upper = scratch.join(format!("upper{i}"));
            let work = scratch.join(format!("work{i}"));
            step_io("create overlay upper dir", fs::create_dir(&upper))?;
            step_io("create overlay work dir", fs::create_dir(&work))?;
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                parent.display(),
                upper.display(),
                work.display()
            );
            step(
                &format!("overlay {}", parent.display()),
                mount(
                    Some("meshsim"),
                    parent,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(opts.as_str()),
                ),
            )?;
            step_io(
                &format!("create {}", dir.display()),
                fs::create_dir_all(dir),
            )?;
        }
        step(
            "detach scratch tmpfs",
            umount2(scratch, MntFlags::MNT_DETACH),
        )?;
    }
    for dir in dirs {
        mount_tmpfs(dir, &format!("tmpfs on {}", dir.display()))?;
    }
    Ok(())
}

fn mount_tmpfs(path: &Path, what: &str) -> Result<(), SandboxError> {
    step(
        what,
        mount(
            Some("meshsim"),
            path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        ),
    )
}

/// Bind-mounts `source` onto `target`, creating `target` as an empty file first.
pub fn bind_file(source: &Path, target: &Path) -> io::Result<()> {
    if !target.exists() {
        fs::File::create(target)?;
    }
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// Inside a process that joined a cluster's mount namespace: gives it a mount namespace of its
/// own with the pod's files from `/etc/netns/<pod>/` bound over `/etc/`, as `ip netns exec`
/// does, so tools resolve the cluster's names.
pub fn bind_pod_etc(pod: &str) -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(io::Error::from)?;
    let dir = Path::new(ETC_NETNS_DIR).join(pod);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let target = Path::new("/etc").join(entry.file_name());
        // Only files that exist are shadowed: creating one would write the host's /etc.
        if target.exists() {
            bind_file(&entry.path(), &target)?;
        }
    }
    Ok(())
}
