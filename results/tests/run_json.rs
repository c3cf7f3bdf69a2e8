//! run.json: round trip, and load errors that name the file and say what to do.

use results::RunResult;
use results::run::{Mode, RunLoadError};
use results::testing::sample_run;

#[test]
fn round_trip_is_lossless_and_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.json");
    let run = sample_run(7, 1.0);
    run.save(&path).unwrap();
    let back = RunResult::load(&path).unwrap();
    assert_eq!(back, run);
    assert_eq!(
        back.to_json_string().unwrap(),
        std::fs::read_to_string(&path).unwrap()
    );
    assert_eq!(
        sample_run(7, 1.0).to_json_string().unwrap(),
        run.to_json_string().unwrap(),
        "the same seed gives the same run"
    );
}

#[test]
fn histograms_in_the_run_decode_to_their_percentiles() {
    let run = sample_run(3, 1.0);
    let step = &run.modes[0].flows[0].steps[0];
    let h = step.latency.decode_histogram().unwrap();
    assert_eq!(h.len(), step.latency.count);
    assert_eq!(h.value_at_quantile(0.99) as f64, step.latency.p99_us);
}

#[test]
fn derived_summaries_follow_the_published_shape() {
    let run = sample_run(1, 1.0);
    let by_mode = |m: Mode| &run.repeats_of(m)[0].summary;
    assert!(by_mode(Mode::NoMesh).added_latency_us.is_none());
    assert!(by_mode(Mode::NoMesh).proxies.is_empty());
    let sidecar = by_mode(Mode::Sidecar);
    let added = sidecar.added_latency_us.expect("sidecar has added latency");
    assert!(added.p50 > 0.0 && added.p99 > added.p50, "{added:?}");
    let sc = &sidecar.proxies[&results::run::ComponentKind::Sidecar];
    assert_eq!(sc.count, 3);
    let per1000 = sc.vcpu_per_1000rps.unwrap();
    assert!((0.15..0.25).contains(&per1000), "{per1000}");
    assert!((sc.mib_planned_per_proxy() - 60.0).abs() < 5.0);
    // 2 flows x 3 steps compared against no-mesh.
    assert_eq!(sidecar.added_latency_by_step.len(), 6);
    let mut again = run.clone();
    again.derive_summaries();
    assert_eq!(again, run, "derive_summaries is idempotent");
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let p = dir.path().join("run.json");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_json_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "{\n  \"schema_version\": 1,\n  \"seed\": oops\n}\n");
    let e = RunResult::load(&p).unwrap_err();
    match &e {
        RunLoadError::Json { line, column, .. } => assert_eq!((*line, *column), (3, 11)),
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{}:3:11:", p.display())), "{msg}");
}

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&sample_run(1, 1.0).to_json_string().unwrap()).unwrap();
    v["modes"][0]["colour"] = serde_json::json!("blue");
    let p = write(&dir, &serde_json::to_string_pretty(&v).unwrap());
    let msg = RunResult::load(&p).unwrap_err().to_string();
    assert!(msg.contains("run.json:") && msg.contains("colour"), "{msg}");
}

#[test]
fn wrong_schema_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&sample_run(1, 1.0).to_json_string().unwrap()).unwrap();
    v["schema_version"] = serde_json::json!(99);
    let p = write(&dir, &v.to_string());
    let e = RunResult::load(&p).unwrap_err();
    assert!(matches!(
        e,
        RunLoadError::UnsupportedVersion {
            found: 99,
            supported: results::RUN_SCHEMA_VERSION,
            ..
        }
    ));
    let msg = e.to_string();
    assert!(
        msg.contains("schema_version 99") && msg.contains("newer meshsim"),
        "{msg}"
    );

    // A run.json of the first layout (before figures were counted per proxy) says it is old.
    v["schema_version"] = serde_json::json!(1);
    let p = write(&dir, &v.to_string());
    let msg = RunResult::load(&p).unwrap_err().to_string();
    assert!(msg.contains("older meshsim"), "{msg}");

    let p = write(&dir, "{\"seed\": 1}");
    let msg = RunResult::load(&p).unwrap_err().to_string();
    assert!(msg.contains("no `schema_version`"), "{msg}");

    let msg = RunResult::load(dir.path().join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing.json"), "{msg}");
}
