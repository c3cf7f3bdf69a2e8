//! A scenario file: arbitrary text through `scenario::load_str` (YAML parsing with places,
//! the format's types, validation), then what `meshsim validate` and the runner do with a
//! loaded scenario (diagnostics printed, resolved JSON).
//!
//! Manifest and JWKS paths the input names are read relative to the working directory (as
//! for a scenario file at `fuzz.yaml`), like the real loader does.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match scenario::load_str(Path::new("fuzz.yaml"), text) {
        Ok(l) => {
            let _ = l.resolved_json();
            let _ = l.namespace_names();
            for i in &l.ignored {
                let _ = i.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
            for d in e.diagnostics() {
                let _ = d.to_string();
            }
        }
    }
});
