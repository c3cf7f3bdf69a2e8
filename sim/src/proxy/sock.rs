//! Sockets the proxies need: marked (so capture leaves the proxy's own traffic alone),
//! created inside another namespace (ztunnel's in-pod mode), and the original destination of
//! a redirected connection.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::netns::NetNs;

/// Packet mark of the proxies' own traffic; capture rules return early on it (Istio's 1337).
pub const PROXY_MARK: u32 = 0x539;

/// Where a connection redirected by the capture rules was going (`SO_ORIGINAL_DST`).
pub fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let sin = getsockopt(&stream.as_fd(), sockopt::OriginalDst).map_err(io::Error::from)?;
    let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
    Ok(SocketAddr::V4(SocketAddrV4::new(
        ip,
        u16::from_be(sin.sin_port),
    )))
}

/// A TCP socket marked as proxy traffic, in the calling thread's namespace.
pub fn marked_socket() -> io::Result<TcpSocket> {
    let s = TcpSocket::new_v4()?;
    setsockopt(&s.as_fd(), sockopt::Mark, &PROXY_MARK).map_err(io::Error::from)?;
    Ok(s)
}

/// How long a proxy waits for an upstream TCP connect before giving up: ztunnel's
/// `CONNECTION_TIMEOUT` (istio/ztunnel `src/proxy.rs`, 10 s) and Envoy's cluster
/// `connect_timeout` as Istio sets it (MeshConfig `connectTimeout`, default 10 s). Without it
/// a dial to an address that is gone (a replaced pod's old IP, black-holed) would wait out
/// the kernel's SYN retries, about two minutes.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn connect_within(socket: TcpSocket, addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {addr} timed out after {CONNECT_TIMEOUT:?}"),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects to `addr` from the calling thread's namespace, marked as proxy traffic.
pub async fn connect_marked(addr: SocketAddr) -> io::Result<TcpStream> {
    connect_within(marked_socket()?, addr).await
}

/// Connects to `addr` from inside `ns` (ztunnel's in-pod mode: the socket is made in the
/// workload's namespace, so it carries the workload's address), marked as proxy traffic.
/// `home` is the namespace the calling thread goes back to, without awaiting in between.
pub async fn connect_in(ns: &NetNs, home: &NetNs, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = {
        ns.enter().map_err(io::Error::other)?;
        let s = marked_socket();
        home.enter().map_err(io::Error::other)?;
        s?
    };
    connect_within(socket, addr).await
}

/// A listener bound inside `ns` (made on a short-lived thread), to be served from any thread.
pub fn listen_in(ns: &NetNs, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    ns.run(|| -> io::Result<std::net::TcpListener> {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(1024)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    })
    .map_err(io::Error::other)?
}

/// Converts a listener made by [`listen_in`] for the current runtime.
pub fn tokio_listener(l: std::net::TcpListener) -> io::Result<TcpListener> {
    TcpListener::from_std(l)
}
