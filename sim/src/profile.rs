//! Cost profiles (`sim/profiles/*.yaml`): per-proxy cost floors taken from published Istio
//! figures, with their sources. Bundled into the binary so a run never depends on the
//! working directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::{Dur, Size};

/// The profiles meshsim ships, by name.
pub const BUNDLED: &[(&str, &str)] = &[
    ("istio-1.24", include_str!("../profiles/istio-1.24.yaml")),
    ("native", include_str!("../profiles/native.yaml")),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub sources: Vec<ProfileSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// Floors by proxy kind: `sidecar`, `ztunnel`, `waypoint`.
    #[serde(default)]
    pub proxies: BTreeMap<String, Floors>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileSource {
    pub title: String,
    pub url: String,
    pub says: String,
}

/// The load the published figures were measured at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reference {
    pub rps: f64,
    pub payload_bytes: u64,
    pub workers: u32,
}

/// What one proxy must cost at least.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Floors {
    #[serde(default)]
    pub cpu_per_request: Dur,
    #[serde(default)]
    pub cpu_per_connection: Dur,
    #[serde(default, rename = "cpuPerKiB")]
    pub cpu_per_kib: Dur,
    #[serde(default)]
    pub memory_base: Size,
    #[serde(default)]
    pub memory_per_connection: Size,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown cost profile `{0}`; meshsim has: {list}", list = names().join(", "))]
    Unknown(String),
    #[error("bundled profile `{0}` is broken: {1} (a build problem; please report it)")]
    Broken(String, String),
}

/// Names of the bundled profiles.
pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(n, _)| *n).collect()
}

impl Profile {
    pub fn load(name: &str) -> Result<Profile, ProfileError> {
        let (_, text) = BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ProfileError::Unknown(name.to_string()))?;
        serde_saphyr::from_str(text).map_err(|e| ProfileError::Broken(name.into(), e.to_string()))
    }

    /// The floors of one proxy kind (none: no floor).
    pub fn floors(&self, kind: &str) -> Floors {
        self.proxies.get(kind).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_profiles_load_and_match_their_names() {
        for name in names() {
            let p = Profile::load(name).unwrap();
            assert_eq!(p.name, name);
        }
        let p = Profile::load("istio-1.24").unwrap();
        assert_eq!(p.floors("sidecar").cpu_per_request.0.as_micros(), 200);
        assert_eq!(p.floors("ztunnel").memory_base.0, 12_000_000);
        assert!(!p.sources.is_empty());
        assert!(
            Profile::load("nope")
                .unwrap_err()
                .to_string()
                .contains("istio-1.24")
        );
    }
}
