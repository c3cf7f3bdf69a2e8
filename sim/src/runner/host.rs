//! The machine a run is made on, as `run.json` records it.

use results::raw::HostInfo;

use crate::sandbox::Sandbox;

/// Kernel, cores, CPU model, user and hostname of this machine.
pub fn collect(sandbox: &Sandbox) -> HostInfo {
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| {
            format!(
                "{} {} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        })
        .unwrap_or_else(|| "unknown".into());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let uid = sandbox.host_uid;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"));
    HostInfo {
        kernel,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        cpu_model,
        user,
        root: sandbox.is_real_root(),
        hostname: nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned()),
    }
}
