//! The cluster's merged metrics: every proxy's on one host loopback port, for a real
//! Prometheus (each proxy also serves its own on 15020 in its namespace).

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::{Cluster, ClusterError};

impl Cluster {
    /// Serves every proxy's metrics merged on `127.0.0.1:port` (0: any free port) of the
    /// host, for a real Prometheus; returns the address.
    pub fn serve_merged_metrics(
        &mut self,
        port: u16,
    ) -> Result<std::net::SocketAddr, ClusterError> {
        let metrics_err = |source| ClusterError::Metrics { port, source };
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(metrics_err)?;
        l.set_nonblocking(true).map_err(metrics_err)?;
        let addr = l.local_addr().map_err(metrics_err)?;
        let sources = Arc::new(self.metrics.clone());
        let (tx, _) = crate::proxy::admin::serve_on_thread("metrics", l, move |l| {
            crate::proxy::admin::serve(l, sources)
        })
        .map_err(metrics_err)?;
        self._metrics_stop = Some(tx);
        self.info.metrics = Some(addr.to_string());
        Ok(addr)
    }
}
