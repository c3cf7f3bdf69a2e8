//! `exec`: a real program inside a pod of a running cluster, with the pod's network namespace,
//! `/etc/hosts`, and (for clusters started without root) the cluster's user namespace.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns};

use super::{ClusterError, ClusterInfo};
use crate::netns::NetNs;
use crate::sandbox;

/// Replaces this process with `argv` running inside `pod` of the cluster: its network
/// namespace, its `/etc/hosts`, and (for clusters started without root) its user namespace.
/// Must be called while the process is single-threaded. Returns only on error.
pub fn exec(
    info: &ClusterInfo,
    pod: &str,
    argv: &[OsString],
) -> Result<std::convert::Infallible, ClusterError> {
    let Some(program) = argv.first() else {
        return Err(ClusterError::NoCommand);
    };
    if !info.pods.iter().any(|p| p.name == pod) {
        return Err(ClusterError::UnknownPod {
            cluster: info.name.clone(),
            pod: pod.to_string(),
            pods: info.pods.iter().map(|p| p.name.clone()).collect(),
        });
    }
    let enter = |step: &'static str, source: io::Error| ClusterError::Enter {
        cluster: info.name.clone(),
        pod: pod.to_string(),
        step,
        source,
    };
    let cwd = std::env::current_dir().ok();
    let proc_ns = |kind: &str| PathBuf::from(format!("/proc/{}/ns/{kind}", info.pid));
    let user = if info.user_namespace {
        Some(File::open(proc_ns("user")).map_err(|e| enter("open its user namespace", e))?)
    } else {
        None
    };
    let mnt = File::open(proc_ns("mnt")).map_err(|e| enter("open its mount namespace", e))?;
    if let Some(user) = user {
        setns(user, CloneFlags::CLONE_NEWUSER)
            .map_err(|e| enter("join its user namespace", e.into()))?;
    }
    setns(mnt, CloneFlags::CLONE_NEWNS).map_err(|e| enter("join its mount namespace", e.into()))?;
    let ns = NetNs::open(pod, &NetNs::path(pod))
        .map_err(|e| enter("open the pod's network namespace", io::Error::other(e)))?;
    ns.enter()
        .map_err(|e| enter("join the pod's network namespace", io::Error::other(e)))?;
    sandbox::bind_pod_etc(pod).map_err(|e| enter("bind the pod's /etc/hosts", e))?;
    // Joining a mount namespace moves the working directory to its root; go back.
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    let cstrings: Result<Vec<CString>, _> =
        argv.iter().map(|a| CString::new(a.as_bytes())).collect();
    let program_name = program.to_string_lossy().into_owned();
    let cstrings = cstrings.map_err(|_| ClusterError::Exec {
        pod: pod.to_string(),
        program: program_name.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"),
    })?;
    let Err(err) = nix::unistd::execvp(&cstrings[0], &cstrings);
    Err(ClusterError::Exec {
        pod: pod.to_string(),
        program: program_name,
        source: err.into(),
    })
}
