//! Accept loops keep serving when the process runs out of file descriptors: they pause and
//! try again instead of ending (the listener would be dead) or spinning (a core lost). A test
//! binary of its own: it uses up the process's descriptors, which would break tests running
//! beside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::net::TcpListener;

#[tokio::test]
async fn out_of_file_descriptors_pauses_then_serves_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = std::net::TcpStream::connect(addr).expect("connect");
    // A low soft limit, then every descriptor under it taken: accept fails with EMFILE while
    // a client waits in the backlog.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("rlimit");
    let open = std::fs::read_dir("/proc/self/fd").expect("fds").count() as u64;
    setrlimit(Resource::RLIMIT_NOFILE, open + 16, hard).expect("lower the soft limit");
    let mut hogs = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hogs.push(f);
    }
    let errors = AtomicU64::new(0);
    let waited = tokio::time::timeout(
        Duration::from_millis(200),
        sim::accept::next(&listener, "test", Some(&errors)),
    )
    .await;
    assert!(
        waited.is_err(),
        "no descriptor left: nothing can be accepted yet"
    );
    let failed = errors.load(Ordering::Relaxed);
    assert!(
        (2..=10).contains(&failed),
        "the loop counted the failures and paused between tries instead of spinning: {failed} in 200 ms"
    );
    // Descriptors come back: the same loop accepts the client that waited.
    drop(hogs);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");
    let (_conn, peer) = tokio::time::timeout(
        Duration::from_secs(3),
        sim::accept::next(&listener, "test", Some(&errors)),
    )
    .await
    .expect("served on once descriptors were free");
    assert_eq!(peer, client.local_addr().expect("client addr"));
}
