//! Servers for tests and benches, each on its own multi-thread runtime and threads (so a load
//! run in the same process does not slow it down): an HTTP/1.1 server that can stall or fail
//! on demand, a TCP echo and a TCP sink. They stop when dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Answers every request with `status` and a body (`x-echo-bytes` long, or 12 bytes).
    Http,
    /// Writes back what it reads.
    TcpEcho,
    /// Reads and counts.
    TcpSink,
}

struct State {
    epoch: Instant,
    /// Nanoseconds since `epoch` until which no response is written.
    stall_until: AtomicU64,
    status: AtomicU16,
    chunked: AtomicBool,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl State {
    async fn wait_stall(&self) {
        loop {
            let until = self.epoch + Duration::from_nanos(self.stall_until.load(Relaxed));
            let now = Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep(until - now).await;
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// An HTTP/1.1 server on 127.0.0.1 with two worker threads.
    pub fn http() -> io::Result<Server> {
        Server::start(Kind::Http, "127.0.0.1:0", 2)
    }

    pub fn tcp_echo() -> io::Result<Server> {
        Server::start(Kind::TcpEcho, "127.0.0.1:0", 2)
    }

    pub fn tcp_sink() -> io::Result<Server> {
        Server::start(Kind::TcpSink, "127.0.0.1:0", 2)
    }

    pub fn start(kind: Kind, listen: &str, threads: usize) -> io::Result<Server> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            epoch: Instant::now(),
            stall_until: AtomicU64::new(0),
            status: AtomicU16::new(200),
            chunked: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("test-server")
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("test-server".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = accept_loop(listener, kind, st) => {}
                        _ = stopped => {}
                    }
                });
                rt.shutdown_background();
            })?;
        Ok(Server {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// No response is written on any connection for `d` from now.
    pub fn stall(&self, d: Duration) {
        let until = self.state.epoch.elapsed() + d;
        self.state
            .stall_until
            .store(u64::try_from(until.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The status of every following HTTP response.
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Relaxed);
    }

    /// Send HTTP bodies chunked instead of with a Content-Length.
    pub fn set_chunked(&self, on: bool) {
        self.state.chunked.store(on, Relaxed);
    }

    /// HTTP requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Relaxed)
    }

    /// Bytes read so far (TCP sink and echo).
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Relaxed)
    }

    /// Blocks until Ctrl-C or the process ends (for the example server).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An address on 127.0.0.1 where nothing listens (connections are refused).
pub fn refused_addr() -> io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

async fn accept_loop(listener: TcpListener, kind: Kind, st: Arc<State>) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            // Out of file descriptors or similar: let the load side see refusals, not a spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = s.set_nodelay(true);
        let st = st.clone();
        tokio::spawn(async move {
            let _ = match kind {
                Kind::Http => serve_http(s, &st).await,
                Kind::TcpEcho => serve_echo(s, &st).await,
                Kind::TcpSink => serve_sink(s, &st).await,
            };
        });
    }
}

async fn serve_http(mut s: TcpStream, st: &State) -> io::Result<()> {
    let mut buf = Vec::with_capacity(8192);
    let mut out = Vec::with_capacity(8192);
    loop {
        // Answer every whole request in the buffer with one write (pipelining works too).
        let mut close = false;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let n = match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await?;
                    return Ok(());
                }
            };
            let (mut body_in, mut body_out) = (0usize, 12usize);
            for h in req.headers.iter() {
                let num = || {
                    std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok())
                };
                if h.name.eq_ignore_ascii_case("content-length") {
                    body_in = num().unwrap_or(0);
                } else if h.name.eq_ignore_ascii_case("x-echo-bytes") {
                    body_out = num().unwrap_or(12).min(64 << 20);
                } else if h.name.eq_ignore_ascii_case("connection") {
                    close |= h.value.eq_ignore_ascii_case(b"close");
                }
            }
            if buf.len() < n + body_in {
                break;
            }
            buf.drain(..n + body_in);
            respond(&mut out, st, body_out, close);
            st.requests.fetch_add(1, Relaxed);
            if close {
                break;
            }
        }
        if !out.is_empty() {
            st.wait_stall().await;
            s.write_all(&out).await?;
            out.clear();
        }
        if close {
            s.shutdown().await?;
            return Ok(());
        }
        if buf.capacity() - buf.len() < 2048 {
            buf.reserve(8192);
        }
        if s.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

fn respond(out: &mut Vec<u8>, st: &State, body: usize, close: bool) {
    use std::io::Write as _;
    let status = st.status.load(Relaxed);
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let conn = if close { "Connection: close\r\n" } else { "" };
    // Writes into a Vec cannot fail.
    if st.chunked.load(Relaxed) {
        let _ = write!(
            out,
            "HTTP/1.1 {status} {reason}\r\n{conn}Transfer-Encoding: chunked\r\n\r\n"
        );
        if body > 0 {
            // Two chunks when it can, so the client walks more than one.
            let first = body / 2;
            for part in [first, body - first] {
                if part > 0 {
                    let _ = write!(out, "{part:x}\r\n");
                    out.resize(out.len() + part, b'x');
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        let _ = write!(
            out,
            "HTTP/1.1 {status} {reason}\r\n{conn}Content-Length: {body}\r\n\r\n"
        );
        out.resize(out.len() + body, b'x');
    }
}

async fn serve_echo(mut s: TcpStream, st: &State) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        st.bytes.fetch_add(n as u64, Relaxed);
        st.wait_stall().await;
        s.write_all(&buf[..n]).await?;
    }
}

async fn serve_sink(mut s: TcpStream, st: &State) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        st.bytes.fetch_add(n as u64, Relaxed);
    }
}
