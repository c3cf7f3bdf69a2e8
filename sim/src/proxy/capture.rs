//! Traffic capture inside a pod's namespace, as istio-cni's in-pod mode installs it (with
//! nftables rather than iptables): outbound TCP to 15001, inbound TCP to 15006, HBONE (15008)
//! and the proxy's own ports untouched, and the proxy's own traffic (marked) exempt.
//! An unmodified client in the pod (curl, wrk) is captured with no proxy settings.

use super::sock::PROXY_MARK;

pub const OUTBOUND_PORT: u16 = 15001;
pub const INBOUND_PORT: u16 = 15006;
pub const HBONE_PORT: u16 = 15008;
pub const METRICS_PORT: u16 = 15020;
pub const READY_PORT: u16 = 15021;

/// Undoes [`rules`]: a pod that leaves the mesh.
pub const REMOVE_RULES: &str = "delete table ip meshsim-capture\n";

/// The capture rule set for one pod.
pub fn rules() -> String {
    format!(
        "table ip meshsim-capture {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname \"lo\" return
    tcp dport {{ {HBONE_PORT}, {METRICS_PORT}, {READY_PORT} }} return
    meta l4proto tcp redirect to :{INBOUND_PORT}
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    meta mark {PROXY_MARK:#x} return
    oifname \"lo\" return
    ip daddr 127.0.0.0/8 return
    meta l4proto tcp redirect to :{OUTBOUND_PORT}
  }}
}}
"
    )
}
