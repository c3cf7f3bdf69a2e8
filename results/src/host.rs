//! Facts about the machine a run was measured on, and when they make its figures suspect: a
//! saturated machine, a contended host (steal), a host that ran slower or faster than another
//! run's. The meters produce the readings; reports and `compare` judge them with these same
//! thresholds.

/// Fraction of the machine's cores above which a sample counts as saturated.
pub const SATURATION: f64 = 0.85;

/// Steal share above which a run is flagged as measured on a contended host.
pub const STEAL_WARNING: f64 = 0.05;

/// Runs whose host probes differ by more than this share are noted by `compare`: figures of
/// that order may have moved with the host, not with meshsim.
pub const DRIFT_NOTE: f64 = 0.20;

/// The contended-host guard: a warning when the hypervisor took more than [`STEAL_WARNING`]
/// of the busy time. Steal itself is not charged to threads (paravirtual time accounting),
/// but the neighbours it signals share caches and cores, so CPU per request and latency
/// both come out higher and noisier than on a quiet machine.
pub fn steal_warning(share: Option<f64>) -> Option<String> {
    let s = share?;
    (s > STEAL_WARNING).then(|| {
        format!(
            "the host was contended: the hypervisor gave {:.1}% of this machine's busy CPU time \
             to other tenants (steal, over {:.0}%), so CPU per request and latency come out \
             higher and noisier than on a quiet machine; compare with --repeat or rerun when \
             the host is quiet",
            s * 100.0,
            STEAL_WARNING * 100.0
        )
    })
}

/// The saturation guard: a warning when, in any interval, the components together used more
/// than [`SATURATION`] of the machine's cores.
pub fn saturation_warning(components_vcpu: &[f64], cores: usize) -> Option<String> {
    let (i, v) = components_vcpu
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    (v > SATURATION * cores as f64).then(|| {
        format!(
            "the machine was saturated: components used {v:.2} of {cores} cores in interval {i} \
             (over {:.0}%); latency then measures contention on this machine, not the mesh. \
             Lower the load or the number of components.",
            SATURATION * 100.0
        )
    })
}

/// How much slower (positive) or faster (negative) `new` ran than `base`, as a share, when
/// that is beyond [`DRIFT_NOTE`].
pub fn drift(base: f64, new: f64) -> Option<f64> {
    if !(base > 0.0 && new > 0.0) {
        return None;
    }
    let change = new / base - 1.0;
    (change.abs() > DRIFT_NOTE).then_some(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_is_flagged_above_85_percent_of_the_cores() {
        assert!(saturation_warning(&[0.5, 1.6, 0.2], 2).is_none());
        let w = saturation_warning(&[0.5, 1.75, 0.2], 2).expect("flagged");
        assert!(w.contains("1.75 of 2 cores in interval 1"), "{w}");
        assert!(saturation_warning(&[], 2).is_none());
    }

    #[test]
    fn steal_is_flagged_above_5_percent() {
        assert!(steal_warning(Some(0.04)).is_none());
        assert!(steal_warning(None).is_none());
        let w = steal_warning(Some(20.0 / 220.0)).expect("flagged");
        assert!(w.contains("9.1% of this machine's busy CPU time"), "{w}");
    }

    #[test]
    fn drift_is_noted_only_beyond_the_threshold() {
        assert_eq!(drift(100.0, 110.0), None);
        assert_eq!(drift(100.0, 80.0), None);
        let slower = drift(75.0, 151.0).expect("twice as slow");
        assert!((slower - 1.0133).abs() < 1e-3, "{slower}");
        let faster = drift(150.0, 75.0).expect("twice as fast");
        assert!((faster + 0.5).abs() < 1e-9, "{faster}");
        assert_eq!(drift(0.0, 75.0), None);
    }
}
