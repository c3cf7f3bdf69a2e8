//! Building a cluster: namespaces, veths, addresses, routes, service DNAT, hosts files.
//!
//! Everything is done over rtnetlink from one builder thread (a netlink socket opened while the
//! thread is inside a namespace keeps working on that namespace after the thread leaves), with
//! interface indices chosen up front so no request waits on a lookup. This is what makes 1000
//! pods come up in seconds rather than the minutes thousands of `ip` processes would take.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::addr;
use super::spec::ClusterSpec;
use crate::netns::{self, NetNs, NetNsRef, NetnsError};
use crate::nft;
use crate::sandbox::ETC_NETNS_DIR;

/// Interface indices chosen up front (per namespace; ifindex spaces are per namespace).
const IDX_LO: u32 = 1;
const IDX_BRIDGE: u32 = 5;
const IDX_ETH0: u32 = 10;
const IDX_FABRIC_PORT_BASE: u32 = 100;
const IDX_POD_VETH_BASE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("netlink: {what}: {source}")]
    Netlink {
        what: String,
        source: rtnetlink::Error,
    },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error(transparent)]
    Nft(#[from] nft::NftError),
    #[error(
        "the scenario is too large: {0}. meshsim addresses at most {max_nodes} nodes, \
         {max_pods} pods per node and {max_services} services",
        max_nodes = addr::MAX_NODES,
        max_pods = addr::MAX_PODS_PER_NODE,
        max_services = addr::MAX_SERVICES
    )]
    TooLarge(String),
}

fn nl<T>(
    what: impl FnOnce() -> String,
    r: Result<T, rtnetlink::Error>,
) -> Result<T, TopologyError> {
    r.map_err(|source| TopologyError::Netlink {
        what: what(),
        source,
    })
}

fn io_err<T>(what: impl FnOnce() -> String, r: io::Result<T>) -> Result<T, TopologyError> {
    r.map_err(|source| TopologyError::Io {
        what: what(),
        source,
    })
}

/// How the cluster's services are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    /// Program node-level nftables DNAT for service VIPs (kube-proxy's job; `no-mesh`).
    pub service_dnat: bool,
}

#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub ns: NetNsRef,
    pub ip: Ipv4Addr,
}

#[derive(Debug)]
pub struct Pod {
    pub name: String,
    pub ns: NetNsRef,
    pub ip: Ipv4Addr,
    /// Index into `Topology::nodes`.
    pub node: usize,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    pub vip: Ipv4Addr,
}

/// A built cluster network. Dropping it drops meshsim's references to the namespaces; the
/// sandbox's mounts keep them until the process exits.
#[derive(Debug)]
pub struct Topology {
    pub spec: ClusterSpec,
    pub fabric: NetNsRef,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub timings: BuildTimings,
    opts: BuildOptions,
    /// Per node, the next free address slot (pods restarted with a new IP take them).
    free_slot: Vec<usize>,
    /// Pods without an address (deleted, their replacement not yet up).
    gone: BTreeSet<usize>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BuildTimings {
    pub namespaces: Duration,
    pub links: Duration,
    pub rules: Duration,
    pub hosts: Duration,
    pub total: Duration,
}

impl Topology {
    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.name == name)
    }

    /// Fabric namespace name, node namespace names and pod namespace names are distinct by
    /// construction: nodes and pods are prefixed.
    pub fn node_ns_name(node: &str) -> String {
        format!("node-{node}")
    }
}

impl Drop for Topology {
    /// Unnames the namespaces and removes the hosts files, so the next cluster built in this
    /// process (the next mode of a run) starts clean. The kernel frees each namespace once
    /// its last thread and descriptor are gone.
    fn drop(&mut self) {
        let names = std::iter::once(self.fabric.name())
            .chain(self.nodes.iter().map(|n| n.ns.name()))
            .chain(self.pods.iter().map(|p| p.ns.name()));
        for name in names {
            let path = NetNs::path(name);
            let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
            let _ = fs::remove_file(&path);
        }
        for pod in &self.pods {
            let _ = fs::remove_dir_all(Path::new(ETC_NETNS_DIR).join(&pod.name));
        }
    }
}

/// Position of each pod on its node (0-based), which fixes its address.
fn pod_slots(spec: &ClusterSpec) -> Vec<usize> {
    let mut per_node = vec![0usize; spec.nodes.len()];
    spec.pods
        .iter()
        .map(|p| {
            let k = per_node[p.node];
            per_node[p.node] += 1;
            k
        })
        .collect()
}

fn check_size(spec: &ClusterSpec) -> Result<(), TopologyError> {
    if spec.nodes.len() > addr::MAX_NODES {
        return Err(TopologyError::TooLarge(format!(
            "{} nodes",
            spec.nodes.len()
        )));
    }
    if spec.services.len() > addr::MAX_SERVICES {
        return Err(TopologyError::TooLarge(format!(
            "{} services",
            spec.services.len()
        )));
    }
    let mut per_node = vec![0usize; spec.nodes.len()];
    for p in &spec.pods {
        per_node[p.node] += 1;
    }
    if let Some(n) = per_node.iter().position(|&c| c > addr::MAX_PODS_PER_NODE) {
        return Err(TopologyError::TooLarge(format!(
            "{} pods on node {}",
            per_node[n], spec.nodes[n].name
        )));
    }
    Ok(())
}

/// Builds the cluster network described by `spec`. Must run inside the sandbox.
pub fn build(spec: &ClusterSpec, opts: BuildOptions) -> Result<Topology, TopologyError> {
    let start = Instant::now();
    check_size(spec)?;
    let mut timings = BuildTimings::default();

    let mut names = vec!["fabric".to_string()];
    names.extend(spec.nodes.iter().map(|n| Topology::node_ns_name(&n.name)));
    names.extend(spec.pods.iter().map(|p| p.name.clone()));
    let mut all = netns::create_many(&names)?.into_iter().map(Arc::new);
    let fabric = all.next().expect("fabric namespace was created first");
    let node_ns: Vec<NetNsRef> = all.by_ref().take(spec.nodes.len()).collect();
    let pod_ns: Vec<NetNsRef> = all.collect();
    timings.namespaces = start.elapsed();

    let slots = pod_slots(spec);
    let nodes: Vec<Node> = spec
        .nodes
        .iter()
        .zip(&node_ns)
        .enumerate()
        .map(|(i, (n, ns))| Node {
            name: n.name.clone(),
            ns: ns.clone(),
            ip: addr::node_ip(i),
        })
        .collect();
    let pods: Vec<Pod> = spec
        .pods
        .iter()
        .zip(&pod_ns)
        .zip(&slots)
        .map(|((p, ns), &k)| Pod {
            name: p.name.clone(),
            ns: ns.clone(),
            ip: addr::pod_ip(p.node, k),
            node: p.node,
        })
        .collect();
    let services: Vec<Service> = spec
        .services
        .iter()
        .enumerate()
        .map(|(s, svc)| Service {
            name: svc.name.clone(),
            namespace: svc.namespace.clone(),
            vip: addr::service_vip(s),
        })
        .collect();

    let t = Instant::now();
    // The builder thread hops between namespaces and comes back to the fabric's, never to the
    // host's: without real root (user namespace) joining the host's again is not permitted.
    wire(&fabric, &fabric, &nodes, &pods)?;
    timings.links = t.elapsed();

    let t = Instant::now();
    if opts.service_dnat {
        let rules = service_dnat_rules(spec, &pods, &services, &BTreeSet::new());
        for node in &nodes {
            nft::apply(&node.ns, &rules)?;
        }
    }
    timings.rules = t.elapsed();

    let t = Instant::now();
    write_hosts(spec, &pods, &services, &BTreeSet::new())?;
    timings.hosts = t.elapsed();
    timings.total = start.elapsed();
    tracing::info!(
        pods = pods.len(),
        nodes = nodes.len(),
        ?timings,
        "topology built"
    );
    let mut free_slot = vec![0usize; nodes.len()];
    for (p, &k) in spec.pods.iter().zip(&slots) {
        free_slot[p.node] = free_slot[p.node].max(k + 1);
    }
    Ok(Topology {
        spec: spec.clone(),
        fabric,
        nodes,
        pods,
        services,
        timings,
        opts,
        free_slot,
        gone: BTreeSet::new(),
    })
}

impl Topology {
    /// Takes pod `i`'s address away, as a deleted pod's goes with its sandbox: the pod's
    /// `eth0` and the node's route to it lose it, the services' DNAT stops choosing it (a
    /// service left with none rejects, as kube-proxy does) and the hosts file drops it.
    pub fn release_address(&mut self, i: usize) -> Result<(), TopologyError> {
        let old = self.pods[i].ip;
        // Services first, as kube-proxy drops a terminating endpoint before its sandbox goes:
        // a connection DNATed to the address in between would be black-holed, and conntrack
        // would keep its retries going there.
        self.gone.insert(i);
        self.rewrite_names()?;
        self.move_address(i, old, None)?;
        tracing::info!(pod = %self.pods[i].name, %old, "pod address released");
        Ok(())
    }

    /// Gives pod `i` (its address released) a new one from its node's pod CIDR, as a
    /// replacement pod gets: the pod's `eth0`, the node's route, the services' DNAT and the
    /// hosts file take it. Returns the new address.
    pub fn assign_address(&mut self, i: usize) -> Result<Ipv4Addr, TopologyError> {
        let node = self.pods[i].node;
        let new = addr::pod_ip(node, self.free_slot[node]);
        self.free_slot[node] += 1;
        self.move_address(i, self.pods[i].ip, Some(new))?;
        self.pods[i].ip = new;
        self.gone.remove(&i);
        self.rewrite_names()?;
        tracing::info!(pod = %self.pods[i].name, %new, "pod address assigned");
        Ok(new)
    }

    /// Removes `old` from pod `i` and its node's route, and adds `new` to both.
    fn move_address(
        &self,
        i: usize,
        old: Ipv4Addr,
        new: Option<Ipv4Addr>,
    ) -> Result<(), TopologyError> {
        let node = self.pods[i].node;
        // The node's veth to this pod is numbered by the pod's original slot.
        let veth = IDX_POD_VETH_BASE + pod_slots(&self.spec)[i] as u32;
        // A released pod (`new` given) has no address left to remove.
        let released = new.is_some();
        let (pod_ns, node_ns) = (&self.pods[i].ns, &self.nodes[node].ns);
        let fabric = &self.fabric;
        let route = |ip: Ipv4Addr| {
            RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(ip, 32)
                .output_interface(veth)
                .scope(RouteScope::Link)
                .build()
        };
        let work = async {
            let ph = handle_in(pod_ns, fabric)?;
            let nh = handle_in(node_ns, fabric)?;
            if !released {
                del_addr(&ph, IDX_ETH0, old, pod_ns.name()).await?;
                nl(
                    || format!("remove the route to {old} in {}", node_ns.name()),
                    nh.route().del(route(old)).execute().await,
                )?;
            }
            if let Some(new) = new {
                add_addr(&ph, IDX_ETH0, new, 32, pod_ns.name()).await?;
                // The kernel dropped the default route with the interface's last address.
                nl(
                    || format!("default route in {}", pod_ns.name()),
                    ph.route()
                        .add(pod_default_route())
                        .replace()
                        .execute()
                        .await,
                )?;
                nl(
                    || format!("route {new} to its pod in {}", node_ns.name()),
                    nh.route().add(route(new)).execute().await,
                )?;
            }
            Ok(())
        };
        on_netlink_thread("topology-readdress", fabric, work)
    }

    /// The services' DNAT and the hosts file, for the pods that have an address now.
    fn rewrite_names(&self) -> Result<(), TopologyError> {
        if self.opts.service_dnat {
            let rules = format!(
                "delete table ip meshsim-services\n{}",
                service_dnat_rules(&self.spec, &self.pods, &self.services, &self.gone)
            );
            for n in &self.nodes {
                nft::apply(&n.ns, &rules)?;
            }
        }
        write_hosts(&self.spec, &self.pods, &self.services, &self.gone)
    }
}

/// A pod's way out: everything via the node, whose end of the veth answers on
/// [`addr::POD_GATEWAY`].
fn pod_default_route() -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(addr::POD_GATEWAY)
        .output_interface(IDX_ETH0)
        .onlink()
        .build()
}

async fn del_addr(h: &Handle, index: u32, ip: Ipv4Addr, ns: &str) -> Result<(), TopologyError> {
    use futures::TryStreamExt as _;
    let mut found = h
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(IpAddr::V4(ip))
        .execute();
    while let Some(msg) = nl(|| format!("list addresses in {ns}"), found.try_next().await)? {
        nl(
            || format!("remove address {ip} in {ns}"),
            h.address().del(msg).execute().await,
        )?;
    }
    Ok(())
}

/// All links, addresses and routes, from one builder thread.
fn wire(host: &NetNs, fabric: &NetNs, nodes: &[Node], pods: &[Pod]) -> Result<(), TopologyError> {
    on_netlink_thread(
        "topology-build",
        host,
        wire_async(host, fabric, nodes, pods),
    )
}

/// Runs netlink `work` on a thread of its own (it enters namespaces, which must not leak into
/// the caller's thread), on a current-thread runtime; the thread returns to `home` after,
/// whatever happened.
fn on_netlink_thread(
    name: &str,
    home: &NetNs,
    work: impl std::future::Future<Output = Result<(), TopologyError>> + Send,
) -> Result<(), TopologyError> {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(s, || {
                let rt = io_err(
                    || format!("start the {name} runtime"),
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build(),
                )?;
                let r = rt.block_on(work);
                home.enter()?;
                r
            })
            .map_err(|source| TopologyError::Io {
                what: format!("start the {name} thread"),
                source,
            })?;
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Opens a netlink connection bound to `ns` (the socket stays in `ns`; the thread goes back).
fn handle_in(ns: &NetNs, host: &NetNs) -> Result<Handle, TopologyError> {
    ns.enter()?;
    let r = rtnetlink::new_connection();
    host.enter()?;
    let (conn, handle, _) = io_err(|| format!("netlink socket in {}", ns.name()), r)?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn link_up(h: &Handle, index: u32, ns: &str) -> Result<(), TopologyError> {
    nl(
        || format!("set link {index} up in {ns}"),
        h.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await,
    )
}

/// A veth whose near end (`name`, `index`, up) stays here and whose far end becomes `eth0`
/// (index `IDX_ETH0`) inside `peer_ns`. The far end is brought up from inside `peer_ns`: the
/// kernel refuses (ENOTCONN) an up flag on a peer created straight into another namespace.
fn veth(name: &str, index: u32, peer_ns: &NetNs) -> LinkMessageBuilder<LinkUnspec> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name("eth0")
        .index(IDX_ETH0)
        .setns_by_fd(peer_ns.as_raw_fd())
        .build();
    LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(name.to_string())
        .index(index)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .up()
}

async fn add_addr(
    h: &Handle,
    index: u32,
    ip: Ipv4Addr,
    prefix: u8,
    ns: &str,
) -> Result<(), TopologyError> {
    nl(
        || format!("add address {ip}/{prefix} in {ns}"),
        h.address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await,
    )
}

async fn wire_async(
    host: &NetNs,
    fabric: &NetNs,
    nodes: &[Node],
    pods: &[Pod],
) -> Result<(), TopologyError> {
    // Fabric: one bridge, one port per node.
    let fh = handle_in(fabric, host)?;
    link_up(&fh, IDX_LO, "fabric").await?;
    nl(
        || "add the fabric bridge".into(),
        fh.link()
            .add(LinkBridge::new("br0").index(IDX_BRIDGE).up().build())
            .execute()
            .await,
    )?;
    for (i, node) in nodes.iter().enumerate() {
        let msg = veth(&format!("n{i}"), IDX_FABRIC_PORT_BASE + i as u32, &node.ns)
            .controller(IDX_BRIDGE)
            .build();
        nl(
            || format!("connect node {} to the fabric", node.name),
            fh.link().add(msg).execute().await,
        )?;
    }

    // Nodes: fabric address, routes to the other nodes' pod CIDRs, forwarding, pod veths.
    let mut pods_by_node: BTreeMap<usize, Vec<(usize, &Pod)>> = BTreeMap::new();
    for p in pods {
        let list = pods_by_node.entry(p.node).or_default();
        let k = list.len();
        list.push((k, p));
    }
    for (i, node) in nodes.iter().enumerate() {
        let ns = node.ns.name();
        let nh = handle_in(&node.ns, host)?;
        link_up(&nh, IDX_LO, ns).await?;
        link_up(&nh, IDX_ETH0, ns).await?;
        add_addr(&nh, IDX_ETH0, node.ip, addr::FABRIC_PREFIX, ns).await?;
        for (j, other) in nodes.iter().enumerate() {
            if i == j {
                continue;
            }
            let (net, len) = addr::pod_cidr(j);
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(net, len)
                .gateway(other.ip)
                .output_interface(IDX_ETH0)
                .build();
            nl(
                || format!("route {net}/{len} via {} in {ns}", other.ip),
                nh.route().add(route).execute().await,
            )?;
        }
        node.ns.enter()?;
        let fwd = netns::sysctl("net.ipv4.ip_forward", "1");
        host.enter()?;
        io_err(|| format!("enable forwarding in {ns}"), fwd)?;
        for &(k, pod) in pods_by_node.get(&i).map(Vec::as_slice).unwrap_or_default() {
            let idx = IDX_POD_VETH_BASE + k as u32;
            nl(
                || format!("connect pod {} to node {}", pod.name, node.name),
                nh.link()
                    .add(veth(&format!("veth{k}"), idx, &pod.ns).build())
                    .execute()
                    .await,
            )?;
            add_addr(&nh, idx, addr::POD_GATEWAY, 32, ns).await?;
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(pod.ip, 32)
                .output_interface(idx)
                .scope(RouteScope::Link)
                .build();
            nl(
                || format!("route to pod {} in {ns}", pod.name),
                nh.route().add(route).execute().await,
            )?;
        }
    }

    // Pods: loopback, the pod address, a default route via the node.
    for pod in pods {
        let ns = pod.ns.name();
        let ph = handle_in(&pod.ns, host)?;
        link_up(&ph, IDX_LO, ns).await?;
        link_up(&ph, IDX_ETH0, ns).await?;
        add_addr(&ph, IDX_ETH0, pod.ip, 32, ns).await?;
        let route = pod_default_route();
        nl(
            || format!("default route in {ns}"),
            ph.route().add(route).execute().await,
        )?;
    }
    Ok(())
}

/// kube-proxy's job in `no-mesh`: each node DNATs service VIPs to endpoints, round-robin
/// (`numgen inc`), so repeated connections reach every replica.
fn service_dnat_rules(
    spec: &ClusterSpec,
    pods: &[Pod],
    services: &[Service],
    gone: &BTreeSet<usize>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table ip meshsim-services {{");
    let mut chains = String::new();
    let mut dispatch = String::new();
    for (s, (svc, built)) in spec.services.iter().zip(services).enumerate() {
        if svc.endpoints.is_empty() {
            continue;
        }
        let endpoints: Vec<usize> = svc
            .endpoints
            .iter()
            .copied()
            .filter(|p| !gone.contains(p))
            .collect();
        for port in &svc.ports {
            if endpoints.is_empty() {
                // kube-proxy rejects a connection to a service whose endpoints are all gone.
                let _ = writeln!(
                    dispatch,
                    "    ip daddr {} tcp dport {} reject with tcp reset",
                    built.vip, port.port
                );
                continue;
            }
            let chain = format!("svc{s}-{}", port.port);
            let _ = writeln!(
                dispatch,
                "    ip daddr {} tcp dport {} jump {chain}",
                built.vip, port.port
            );
            let arms: Vec<String> = endpoints
                .iter()
                .enumerate()
                .map(|(e, _)| format!("{e} : jump {chain}-ep{e}"))
                .collect();
            let _ = writeln!(
                chains,
                "  chain {chain} {{\n    numgen inc mod {} vmap {{ {} }}\n  }}",
                endpoints.len(),
                arms.join(", ")
            );
            for (e, &pod) in endpoints.iter().enumerate() {
                let _ = writeln!(
                    chains,
                    "  chain {chain}-ep{e} {{\n    meta l4proto tcp dnat to {}:{}\n  }}",
                    pods[pod].ip, port.target_port
                );
            }
        }
    }
    out.push_str(&chains);
    let _ = writeln!(
        out,
        "  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{dispatch}  }}"
    );
    let _ = writeln!(out, "}}");
    out
}

/// One hosts file for the whole cluster (services by their Kubernetes names, pods by name),
/// hard-linked into `/etc/netns/<pod>/hosts` for every pod: 1000 pods cost one file.
fn write_hosts(
    spec: &ClusterSpec,
    pods: &[Pod],
    services: &[Service],
    gone: &BTreeSet<usize>,
) -> Result<(), TopologyError> {
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for svc in services {
        let n = &svc.name;
        let ns = &svc.namespace;
        let _ = writeln!(
            hosts,
            "{}\t{n}.{ns}.svc.cluster.local {n}.{ns}.svc {n}.{ns} {n}",
            svc.vip
        );
    }
    for (i, (p, pod)) in spec.pods.iter().zip(pods).enumerate() {
        if gone.contains(&i) {
            continue;
        }
        let _ = writeln!(hosts, "{}\t{} {}.{}", pod.ip, p.name, p.name, p.namespace);
    }
    let etc = Path::new(ETC_NETNS_DIR);
    let shared = etc.join(".cluster-hosts");
    io_err(
        || format!("write {}", shared.display()),
        fs::write(&shared, hosts),
    )?;
    for pod in pods {
        let dir = etc.join(&pod.name);
        io_err(
            || format!("create {}", dir.display()),
            fs::create_dir_all(&dir),
        )?;
        let target = dir.join("hosts");
        // A cluster built earlier in this process (another mode of a run) may have left one.
        let _ = fs::remove_file(&target);
        io_err(
            || format!("link {}", target.display()),
            fs::hard_link(&shared, &target),
        )?;
    }
    Ok(())
}
