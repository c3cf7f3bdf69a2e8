//! docs/ci.md stays true: its workflow is valid YAML, and every `meshsim` command it runs
//! exists with the flags it passes.

mod common;

use std::process::Command;

#[test]
fn the_ci_recipe_uses_only_commands_and_flags_meshsim_has() {
    let text = std::fs::read_to_string(common::repo().join("docs/ci.md")).expect("docs/ci.md");
    let (_, rest) = text.split_once("```yaml\n").expect("a yaml block");
    let (workflow, _) = rest.split_once("```").expect("its end");
    let doc: serde_json::Value = serde_saphyr::from_str(workflow).expect("the workflow is YAML");
    assert!(doc["jobs"]["mesh-performance"]["steps"].is_array(), "{doc}");
    let mut checked = 0;
    for line in workflow.lines() {
        let Some((_, cmd)) = line.split_once("meshsim ") else {
            continue;
        };
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let Some(sub) = words.first().filter(|w| ["run", "compare"].contains(w)) else {
            continue;
        };
        let help = Command::new(common::meshsim())
            .args([sub, "--help"])
            .output()
            .expect("meshsim");
        assert!(help.status.success(), "meshsim {sub} --help");
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(help.contains(flag), "meshsim {sub} has no {flag}: {line}");
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "the recipe's meshsim commands were found ({checked} flags)"
    );
}
