//! Deterministic addressing. The same scenario always gets the same addresses, so a replayed
//! run and a user's notes about it agree.
//!
//! - fabric: node `n` (1-based) is `10.255.0.n/16` on the fabric bridge;
//! - pods: node `n` owns `10.n.0.0/16`; its `k`-th pod (0-based) is `10.n.(k+2)/256.(k+2)%256`,
//!   i.e. `10.1.0.2`, `10.1.0.3`, …;
//! - every pod's gateway is `169.254.1.1` (the node side of its veth, as the CNI ptp plugin
//!   does);
//! - service `s` (0-based) has the virtual IP `10.96.(s+10)/256.(s+10)%256`.

use std::net::Ipv4Addr;

/// Most nodes a cluster may have (the second octet of the pod CIDRs).
pub const MAX_NODES: usize = 250;
/// Most pods one node may hold.
pub const MAX_PODS_PER_NODE: usize = 65_000;
/// Most services a cluster may have.
pub const MAX_SERVICES: usize = 65_000;

pub const FABRIC_PREFIX: u8 = 16;
pub const POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// Fabric address of node `node` (0-based index).
pub fn node_ip(node: usize) -> Ipv4Addr {
    let n = node + 1;
    Ipv4Addr::new(10, 255, (n >> 8) as u8, (n & 0xff) as u8)
}

/// Pod CIDR (`/16`) of node `node` (0-based index).
pub fn pod_cidr(node: usize) -> (Ipv4Addr, u8) {
    (Ipv4Addr::new(10, (node + 1) as u8, 0, 0), 16)
}

/// Address of the `k`-th pod (0-based) on node `node` (0-based).
pub fn pod_ip(node: usize, k: usize) -> Ipv4Addr {
    let h = k + 2;
    Ipv4Addr::new(10, (node + 1) as u8, (h >> 8) as u8, (h & 0xff) as u8)
}

/// Virtual IP of service `s` (0-based).
pub fn service_vip(s: usize) -> Ipv4Addr {
    let h = s + 10;
    Ipv4Addr::new(10, 96, (h >> 8) as u8, (h & 0xff) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_deterministic_and_distinct() {
        assert_eq!(node_ip(0), Ipv4Addr::new(10, 255, 0, 1));
        assert_eq!(pod_ip(0, 0), Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(pod_ip(1, 300), Ipv4Addr::new(10, 2, 1, 46));
        assert_eq!(service_vip(0), Ipv4Addr::new(10, 96, 0, 10));
        let mut seen = std::collections::HashSet::new();
        for n in 0..20 {
            for k in 0..300 {
                assert!(seen.insert(pod_ip(n, k)), "duplicate pod address");
            }
        }
        let (net, len) = pod_cidr(3);
        assert_eq!((net, len), (Ipv4Addr::new(10, 4, 0, 0), 16));
    }
}
