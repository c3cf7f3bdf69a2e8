//! Enrollment: which data plane each pod gets from its namespace's and its own labels, decided
//! the way a real Istio 1.24 cluster decides it. Two independent parts of Istio act on a pod:
//!
//! - the **sidecar injector** webhook (istiod) adds a sidecar when its selectors match
//!   (`manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml`, then
//!   `pkg/kube/inject/inject.go` `injectRequired`);
//! - **istio-cni** redirects the pod to ztunnel when its enablement selectors match and the pod
//!   has no sidecar (`manifests/charts/istio-cni/values.yaml` `enablementSelectors`,
//!   `cni/pkg/util/enablement_selector.go`, which skips pods carrying a sidecar).
//!
//! A pod neither acts on is out of the mesh and talks plaintext.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::Mode;

pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
pub const ISTIO_INJECTION: &str = "istio-injection";
pub const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
pub const REVISION: &str = "istio.io/rev";
/// Set by migration stages on a workload that was not restarted: whether its pods had a
/// sidecar when they last started. Injection happens only at pod creation, so relabelling
/// alone neither adds nor removes a sidecar; ambient capture, by contrast, follows the labels
/// live (istio-cni watches them).
pub const SIDECAR_AT_START: &str = "meshsim.io/sidecar-at-start";

/// The labels that decide enrollment; a scenario that writes any of them is "declared".
pub const ENROLLMENT_LABELS: [&str; 4] =
    [DATAPLANE_MODE, ISTIO_INJECTION, SIDECAR_INJECT, REVISION];

/// The data plane one pod is in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DataPlane {
    /// Out of the mesh: no proxy of its own, plaintext.
    None,
    /// An injected sidecar (Envoy).
    Sidecar,
    /// Captured by its node's ztunnel.
    Ambient,
}

impl DataPlane {
    pub fn as_str(self) -> &'static str {
        match self {
            DataPlane::None => "none",
            DataPlane::Sidecar => "sidecar",
            DataPlane::Ambient => "ambient",
        }
    }
}

impl std::fmt::Display for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pod's data plane and the label that decided it, for reports and `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub dataplane: DataPlane,
    pub why: String,
}

type Labels = BTreeMap<String, String>;

fn get<'a>(l: &'a Labels, k: &str) -> Option<&'a str> {
    l.get(k).map(String::as_str)
}

/// Whether the sidecar injector injects the pod, and why. meshsim has one control plane, so
/// any `istio.io/rev` names it (a real cluster injects only for a revision that exists).
pub fn sidecar_injected(ns: &Labels, pod: &Labels) -> Option<String> {
    let pod_says = get(pod, SIDECAR_INJECT);
    // The webhooks' objectSelectors: `NotIn [false]` lets a pod opt out of a namespace-wide
    // injection; `In [true]` is how a pod opts in where the namespace says nothing.
    let opted_out = pod_says == Some("false");
    match (get(ns, ISTIO_INJECTION), get(ns, REVISION)) {
        (Some("enabled"), _) if !opted_out => Some(format!("namespace {ISTIO_INJECTION}=enabled")),
        // Any other value (e.g. `disabled`) matches no webhook: the namespace label wins over
        // a pod's `sidecar.istio.io/inject: "true"`.
        (Some(_), _) => None,
        (None, Some(rev)) if !opted_out => Some(format!("namespace {REVISION}={rev}")),
        (None, Some(_)) => None,
        (None, None) => match (get(pod, REVISION), pod_says) {
            (Some(rev), _) if !opted_out => Some(format!("pod {REVISION}={rev}")),
            (None, Some("true")) => Some(format!("pod {SIDECAR_INJECT}=true")),
            _ => None,
        },
    }
}

/// Whether istio-cni redirects the pod to ztunnel, and why (a pod with a sidecar never is).
pub fn ambient_enrolled(ns: &Labels, pod: &Labels) -> Option<String> {
    match (get(pod, DATAPLANE_MODE), get(ns, DATAPLANE_MODE)) {
        (Some("ambient"), _) => Some(format!("pod {DATAPLANE_MODE}=ambient")),
        (Some("none"), _) => None,
        (_, Some("ambient")) => Some(format!("namespace {DATAPLANE_MODE}=ambient")),
        _ => None,
    }
}

/// The data plane the labels declare for one pod.
pub fn enroll(ns: &Labels, pod: &Labels) -> Enrollment {
    let injected = match get(pod, SIDECAR_AT_START) {
        Some("true") => Some(
            "a sidecar injected when the pod last started (restart it to apply its labels)"
                .to_string(),
        ),
        Some(_) => None,
        None => sidecar_injected(ns, pod),
    };
    if let Some(why) = injected {
        let why = match ambient_enrolled(ns, pod) {
            Some(a) => format!("{why} (a sidecar pod is not captured by ztunnel, despite {a})"),
            None => why,
        };
        return Enrollment {
            dataplane: DataPlane::Sidecar,
            why,
        };
    }
    if let Some(why) = ambient_enrolled(ns, pod) {
        return Enrollment {
            dataplane: DataPlane::Ambient,
            why,
        };
    }
    let why = if get(pod, DATAPLANE_MODE) == Some("none") {
        format!("pod {DATAPLANE_MODE}=none")
    } else {
        "no enrollment label".to_string()
    };
    Enrollment {
        dataplane: DataPlane::None,
        why,
    }
}

impl Mode {
    /// The data plane every pod gets in an override mode; `None` for `declared`, where each
    /// pod's labels decide.
    pub fn dataplane_override(self) -> Option<DataPlane> {
        match self {
            Mode::NoMesh => Some(DataPlane::None),
            Mode::Sidecar => Some(DataPlane::Sidecar),
            Mode::Ambient | Mode::AmbientWaypoint => Some(DataPlane::Ambient),
            Mode::Declared => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn dp(ns: &[(&str, &str)], pod: &[(&str, &str)]) -> DataPlane {
        enroll(&l(ns), &l(pod)).dataplane
    }

    /// One row per webhook of mutatingwebhook.yaml (default revision) and per enablement
    /// selector of istio-cni's values.yaml.
    #[test]
    fn istio_enrollment_table() {
        use DataPlane::*;
        type Pairs = &'static [(&'static str, &'static str)];
        let rows: &[(Pairs, Pairs, DataPlane)] = &[
            (&[], &[], None),
            // "namespace." webhook: istio-injection=enabled, pod not opted out.
            (&[(ISTIO_INJECTION, "enabled")], &[], Sidecar),
            (
                &[(ISTIO_INJECTION, "enabled")],
                &[(SIDECAR_INJECT, "false")],
                None,
            ),
            // No webhook matches a namespace labelled disabled, whatever the pod says.
            (
                &[(ISTIO_INJECTION, "disabled")],
                &[(SIDECAR_INJECT, "true")],
                None,
            ),
            // "object." webhook: unlabelled namespace, pod opts in.
            (&[], &[(SIDECAR_INJECT, "true")], Sidecar),
            // "rev.namespace." / "rev.object." webhooks.
            (&[(REVISION, "default")], &[], Sidecar),
            (&[(REVISION, "default")], &[(SIDECAR_INJECT, "false")], None),
            (&[], &[(REVISION, "default")], Sidecar),
            // istio-cni: the namespace selector, with the pod's `none` opting out.
            (&[(DATAPLANE_MODE, "ambient")], &[], Ambient),
            (
                &[(DATAPLANE_MODE, "ambient")],
                &[(DATAPLANE_MODE, "none")],
                None,
            ),
            // istio-cni: the pod selector alone.
            (&[], &[(DATAPLANE_MODE, "ambient")], Ambient),
            // A sidecar pod is skipped by istio-cni (enablement_selector.go, podHasSidecar).
            (
                &[(DATAPLANE_MODE, "ambient")],
                &[(SIDECAR_INJECT, "true")],
                Sidecar,
            ),
            (
                &[(DATAPLANE_MODE, "ambient"), (ISTIO_INJECTION, "enabled")],
                &[],
                Sidecar,
            ),
            (
                &[(ISTIO_INJECTION, "enabled")],
                &[(DATAPLANE_MODE, "ambient"), (SIDECAR_INJECT, "false")],
                Ambient,
            ),
            // A `none` pod in an injected namespace still gets its sidecar: the injector does
            // not read the dataplane-mode label.
            (
                &[(ISTIO_INJECTION, "enabled")],
                &[(DATAPLANE_MODE, "none")],
                Sidecar,
            ),
        ];
        for (i, (ns, pod, want)) in rows.iter().enumerate() {
            assert_eq!(dp(ns, pod), *want, "row {i}: ns {ns:?} pod {pod:?}");
        }
    }

    #[test]
    fn the_reason_names_the_deciding_label() {
        let e = enroll(
            &l(&[(DATAPLANE_MODE, "ambient"), (ISTIO_INJECTION, "enabled")]),
            &l(&[]),
        );
        assert!(e.why.contains("istio-injection=enabled"), "{}", e.why);
        assert!(e.why.contains("not captured by ztunnel"), "{}", e.why);
        assert_eq!(
            enroll(&l(&[]), &l(&[])).why,
            "no enrollment label".to_string()
        );
    }
}
