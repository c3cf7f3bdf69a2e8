//! The committed `run.schema.json` must match the types, so tools validating run.json against
//! it agree with what meshsim writes and reads.

use std::path::PathBuf;

#[test]
fn committed_schema_matches_the_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("run.schema.json");
    let generated = results::run::schema_json();
    if std::env::var_os("MESHSIM_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write run.schema.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the run.json types (results/src/run.rs).\n\
         If the change is intended, regenerate it with\n\
         \n    MESHSIM_BLESS=1 cargo test -p meshsim-results --test schema\n\n\
         and bump RUN_SCHEMA_VERSION when an older reader would misread the new layout.",
        path.display()
    );
}

#[test]
fn schema_names_the_version_and_rejects_unknown_fields() {
    let s = results::run::schema_json();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert!(v["properties"]["schema_version"].is_object());
    assert_eq!(v["additionalProperties"], serde_json::Value::Bool(false));
}
