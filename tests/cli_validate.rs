//! `meshsim validate`: exit 0 on the bundled scenarios, and on a broken file every problem as
//! `file:line:column: field: message` with exit 1; nothing is started either way.

use std::path::{Path, PathBuf};
use std::process::Command;

fn meshsim() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meshsim"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn bundled_scenarios_validate() {
    let out = Command::new(meshsim())
        .arg("validate")
        .args(
            [
                "quickstart",
                "payment",
                "istio-reference",
                "connection-churn",
            ]
            .map(|n| repo().join("scenarios").join(format!("{n}.yaml"))),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": ok").count(), 4, "{stdout}");
    assert!(stdout.contains("6 manifest objects"), "{stdout}");
}

#[test]
fn broken_scenario_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.yaml");
    std::fs::write(
        &p,
        "version: 1\nname: b\nnodes: [{name: n1}]\nworkloads:\n  - name: c\n    nodes: [n9]\nflows:\n  - name: f\n    from: c\n    to: nope:80\n    rate: 10\n",
    )
    .unwrap();
    let out = Command::new(meshsim())
        .arg("validate")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = p.display();
    assert!(
        err.contains(&format!(
            "{f}:6:13: workloads[0].nodes[0]: node `n9` does not exist"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}:10:9: flows[0].to: service `nope` does not exist"
        )),
        "{err}"
    );
    assert!(err.contains("2 problems"), "{err}");
}

#[test]
fn missing_file_is_an_error_not_a_verdict() {
    let out = Command::new(meshsim())
        .args(["validate", "/nonexistent/s.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read scenario /nonexistent/s.yaml")
    );
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = Command::new(meshsim()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string(repo().join("scenarios/scenario.schema.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}
