//! Accept loops that keep serving. A failed `accept` never ends a listener: an error that
//! belongs to one connection (it was aborted or reset before it was accepted) is skipped; one
//! that says the process is out of something (file descriptors, buffers, memory) is logged,
//! counted, and waited out with a growing pause, so the loop neither dies nor spins at full
//! CPU while the condition lasts (as ztunnel's and hyper's accept loops do).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Errors that concern the one connection being accepted, not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(libc::EPROTO)
}

/// The next connection on `listener`; waits out errors as the module says. `what` names the
/// listener in logs; `errors` counts the failures (e.g. a component's `accept_errors`).
pub async fn next(
    listener: &TcpListener,
    what: &str,
    errors: Option<&AtomicU64>,
) -> (TcpStream, SocketAddr) {
    let mut pause = FIRST_PAUSE;
    loop {
        match listener.accept().await {
            Ok(c) => return c,
            Err(e) => {
                if let Some(n) = errors {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                if is_connection_error(&e) {
                    tracing::debug!(listener = what, error = %e, "a connection failed before it was accepted");
                    continue;
                }
                tracing::warn!(
                    listener = what,
                    error = %e,
                    pause = ?pause,
                    "accept failed; pausing, then serving on"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}
