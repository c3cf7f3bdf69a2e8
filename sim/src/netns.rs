//! Network namespaces: creating them, naming them under `/run/netns`, and entering them.
//!
//! A namespace is kept alive by the file descriptor meshsim holds and by its bind mount in the
//! sandbox's private `/run/netns`; both vanish with the process, so does the namespace.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sched::{CloneFlags, setns, unshare};

use crate::sandbox::{self, NETNS_DIR};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot create network namespace {name}: {source}")]
    Create { name: String, source: io::Error },
    #[error("cannot enter network namespace {name}: {source}")]
    Enter { name: String, source: io::Error },
    #[error("cannot open network namespace {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot start a thread in network namespace {name}: {source}")]
    Thread { name: String, source: io::Error },
}

/// A network namespace meshsim created (or the host's, for returning to it).
#[derive(Debug)]
pub struct NetNs {
    name: String,
    fd: OwnedFd,
}

pub type NetNsRef = Arc<NetNs>;

impl NetNs {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The namespace the calling thread is in now.
    pub fn current(name: &str) -> Result<NetNs, NetnsError> {
        Self::open(name, Path::new("/proc/thread-self/ns/net"))
    }

    /// Opens a namespace by path (e.g. `/run/netns/<name>` in a cluster's mount namespace).
    pub fn open(name: &str, path: &Path) -> Result<NetNs, NetnsError> {
        let file = File::open(path).map_err(|source| NetnsError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(NetNs {
            name: name.to_string(),
            fd: file.into(),
        })
    }

    /// Moves the calling thread into this namespace. Sockets it opens from now on live here.
    /// A thread already there stays put (joining needs privileges that joining nothing does
    /// not, which lets unprivileged tests use the host's namespace).
    pub fn enter(&self) -> Result<(), NetnsError> {
        if self.is_current() {
            return Ok(());
        }
        setns(&self.fd, CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter {
            name: self.name.clone(),
            source: e.into(),
        })
    }

    /// Runs `f` on a short-lived thread inside this namespace and returns its result. The
    /// calling thread's namespace is untouched.
    pub fn run<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name(format!("ns-{}", self.name))
                .spawn_scoped(s, || {
                    self.enter()?;
                    Ok(f())
                })
                .map_err(|source| NetnsError::Thread {
                    name: self.name.clone(),
                    source,
                })?;
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Whether the calling thread is in this namespace now.
    pub fn is_current(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let mine = fs::metadata("/proc/thread-self/ns/net");
        let this = nix::sys::stat::fstat(&self.fd);
        match (mine, this) {
            (Ok(m), Ok(t)) => m.ino() == t.st_ino && m.dev() == t.st_dev,
            _ => false,
        }
    }

    /// Path of the namespace's bind mount in the sandbox.
    pub fn path(name: &str) -> PathBuf {
        Path::new(NETNS_DIR).join(name)
    }
}

impl AsRawFd for NetNs {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Creates one network namespace per name, each with a bind mount at `/run/netns/<name>` so
/// `ip netns` and `exec` find it. Runs on a private thread (unshare moves the calling thread),
/// so the caller stays where it is.
pub fn create_many(names: &[String]) -> Result<Vec<NetNs>, NetnsError> {
    // The creating thread ends in the last namespace it made and then exits: it never goes
    // back to the host's, which an unprivileged (user namespace) run may not join again.
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("netns-create".into())
            .spawn_scoped(s, || {
                let mut out = Vec::with_capacity(names.len());
                for name in names {
                    let ns = create_here(name);
                    match ns {
                        Ok(ns) => out.push(ns),
                        Err(e) => return Err(e),
                    }
                }
                Ok(out)
            })
            .map_err(|source| NetnsError::Thread {
                name: "netns-create".into(),
                source,
            })?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Unshares a new namespace on the calling thread (which stays in it) and names it.
fn create_here(name: &str) -> Result<NetNs, NetnsError> {
    let err = |source: io::Error| NetnsError::Create {
        name: name.to_string(),
        source,
    };
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| err(e.into()))?;
    let ns = NetNs::current(name)?;
    let target = NetNs::path(name);
    sandbox::bind_file(Path::new("/proc/thread-self/ns/net"), &target).map_err(err)?;
    Ok(ns)
}

/// Writes a sysctl of the namespace the calling thread is in (`/proc/sys/net` follows the
/// opening thread's namespace).
pub fn sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    fs::write(&path, value).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}
