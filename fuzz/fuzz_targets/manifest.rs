//! A multi-document Istio manifest: arbitrary text through `scenario::manifest::parse_file`,
//! then what the simulator reads from the objects (JSON form, waypoint settings and the
//! `proxy.istio.io/config` annotation of Gateways).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scenario::manifest::{self, Object};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, diags) = manifest::parse_file(Path::new("m.yaml"), text);
    for d in &diags {
        let _ = d.to_string();
    }
    for i in &file.ignored {
        let _ = i.to_string();
    }
    for o in &file.objects {
        let _ = o.object.to_json();
        let _ = o.object.meta().ns();
        let _ = o.origin.line();
        if let Object::Gateway(g) = &o.object {
            let _ = manifest::waypoint_for(g);
            let _ = manifest::proxy_config(g);
        }
    }
});
