//! Cost profiles (`scenario/profiles/*.yaml`): per-proxy cost floors taken from published Istio
//! figures, with their sources. Bundled into the binary so a run never depends on the
//! working directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::units::{Dur, Size};
use crate::yaml::LocIndex;

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
    /// The capacity plan's cost model (`meshsim plan`); absent: this profile cannot plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<crate::costmodel::CostModel>,
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
    /// Share (0..=1) of `cpuPerRequest` paid before the request goes on; the rest is paid on
    /// the same worker right after the response is handed back. Envoy spends much of its
    /// per-request CPU off the request's path (Istio's published latency for two sidecars is
    /// well below their CPU per request), so an all-inline floor would overstate latency.
    /// Default 1: all of it on the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_cpu_on_path: Option<f64>,
}

impl Floors {
    /// [`Floors::request_cpu_on_path`], defaulted.
    pub fn on_path_share(&self) -> f64 {
        self.request_cpu_on_path.unwrap_or(1.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown cost profile `{0}`; meshsim has: {list}", list = names().join(", "))]
    Unknown(String),
    #[error("bundled profile `{0}` is broken: {1} (a build problem; please report it)")]
    Broken(String, String),
    #[error("cannot read the cost profile {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a valid cost profile: {message} (see scenario/profiles/istio-1.24.yaml for the format)"
    )]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
}

/// Whether a profile name is a file of one's own rather than a bundled profile.
fn is_file_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Names of the bundled profiles.
pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(n, _)| *n).collect()
}

impl Profile {
    /// A bundled profile by name, or a profile file of your own (a path ending in `.yaml` or
    /// `.yml`, e.g. to ask "what if the sidecar cost twice as much").
    pub fn load(name: &str) -> Result<Profile, ProfileError> {
        if is_file_name(name) {
            return Self::load_file(std::path::Path::new(name));
        }
        let (_, text) = BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ProfileError::Unknown(name.to_string()))?;
        let p: Profile = serde_saphyr::from_str(text)
            .map_err(|e| ProfileError::Broken(name.into(), e.to_string()))?;
        p.validate().map_err(|(path, message)| {
            ProfileError::Broken(name.into(), format!("{path}: {message}"))
        })?;
        Ok(p)
    }

    /// A profile as a scenario names it: a bundled name, or a file path taken relative to the
    /// scenario's directory (as manifests and JWKS files are).
    pub fn load_relative(name: &str, base: &std::path::Path) -> Result<Profile, ProfileError> {
        if is_file_name(name) {
            return Self::load_file(&base.join(name));
        }
        Self::load(name)
    }

    pub fn load_file(path: &std::path::Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let p: Profile = serde_saphyr::from_str(&text).map_err(|e| ProfileError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        p.validate()
            .map_err(|(field, message)| ProfileError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "line {}: {field}: {message}",
                    LocIndex::build(&text, 0).value_loc(&field).line
                ),
            })?;
        Ok(p)
    }

    /// What serde cannot check: values in range. The error is (field path, message).
    fn validate(&self) -> Result<(), (String, String)> {
        if let Some(m) = &self.model {
            m.validate()?;
        }
        for (kind, f) in &self.proxies {
            if let Some(share) = f.request_cpu_on_path
                && !(0.0..=1.0).contains(&share)
            {
                return Err((
                    format!("proxies.{kind}.requestCpuOnPath"),
                    format!(
                        "{share} is not a share between 0 and 1 (0: all of cpuPerRequest after the response, 1: all before forwarding)"
                    ),
                ));
            }
        }
        Ok(())
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

    #[test]
    fn a_profile_file_of_ones_own_loads_and_a_bad_one_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("slow.yaml");
        std::fs::write(
            &good,
            "name: slow\ndescription: twice istio\nproxies:\n  sidecar:\n    cpuPerRequest: 400us\n",
        )
        .unwrap();
        let p = Profile::load(good.to_str().unwrap()).unwrap();
        assert_eq!(p.floors("sidecar").cpu_per_request.0.as_micros(), 400);
        let bad = dir.path().join("bad.yaml");
        std::fs::write(
            &bad,
            "name: x\ndescription: y\nproxies:\n  sidecar:\n    cpuPerReqest: 1us\n",
        )
        .unwrap();
        let e = Profile::load(bad.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yaml") && e.contains("cpuPerReqest"), "{e}");
        let e = Profile::load("/nonexistent/p.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/p.yaml"), "{e}");
        let out_of_range = dir.path().join("share.yaml");
        std::fs::write(
            &out_of_range,
            "name: x\ndescription: y\nproxies:\n  ztunnel:\n    cpuPerKiB: 1us\n  sidecar:\n    cpuPerRequest: 1us\n    requestCpuOnPath: 1.5\n",
        )
        .unwrap();
        let e = Profile::load(out_of_range.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("share.yaml")
                && e.contains("line 8")
                && e.contains("proxies.sidecar.requestCpuOnPath"),
            "{e}"
        );
    }
}
