//! The clients: one `Conn` per load connection, reused across requests and steps. HTTP/1.1 is
//! hand-written on a `TcpStream` (httparse for the response head): one write per request from
//! a prebuilt buffer, one reused read buffer, nothing allocated per request.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::record::ErrorKind;
use crate::spec::{Connector, LoadSpec, Target};

/// What every connection of a run shares.
pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub connector: Option<Connector>,
    /// HTTP keep-alive request, tcp-rr request, or tcp-stream write buffer.
    pub request: Vec<u8>,
    /// The same HTTP request with `Connection: close`, for churn.
    pub close_request: Vec<u8>,
    pub rr_response: usize,
    pub timeout: Duration,
    /// The caller's count of completed requests (see `Hooks::completed`).
    pub completed: Option<Arc<AtomicU64>>,
}

impl Shared {
    pub fn new(
        spec: &LoadSpec,
        addr: SocketAddr,
        connector: Option<Connector>,
        completed: Option<Arc<AtomicU64>>,
    ) -> Shared {
        let (request, close_request) = match &spec.target {
            Target::Http { .. } => (http_request(spec, false), http_request(spec, true)),
            Target::Tcp { .. } => (vec![b'x'; spec.request_bytes], Vec::new()),
        };
        Shared {
            addr,
            connector,
            request,
            close_request,
            rr_response: spec.rr_response_bytes(),
            timeout: spec.timeout,
            completed,
        }
    }

    pub async fn open(&self) -> io::Result<TcpStream> {
        let s = match &self.connector {
            Some(c) => c(self.addr).await?,
            None => TcpStream::connect(self.addr).await?,
        };
        // Requests are single small writes: never wait for Nagle.
        s.set_nodelay(true)?;
        Ok(s)
    }
}

fn http_request(spec: &LoadSpec, close: bool) -> Vec<u8> {
    let Target::Http {
        host,
        port,
        path,
        host_header,
    } = &spec.target
    else {
        return Vec::new();
    };
    let method = spec.method.as_deref().unwrap_or(if spec.request_bytes > 0 {
        "POST"
    } else {
        "GET"
    });
    let mut r = format!("{method} {path} HTTP/1.1\r\n");
    let user_host = spec
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("host"));
    if !user_host {
        let h = match host_header {
            Some(h) => h.clone(),
            None => {
                let h = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                if *port == 80 {
                    h
                } else {
                    format!("{h}:{port}")
                }
            }
        };
        r.push_str(&format!("Host: {h}\r\n"));
    }
    for (k, v) in &spec.headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = spec.response_bytes {
        r.push_str(&format!("x-echo-bytes: {n}\r\n"));
    }
    if spec.request_bytes > 0 {
        r.push_str(&format!(
            "Content-Type: application/octet-stream\r\nContent-Length: {}\r\n",
            spec.request_bytes
        ));
    } else if matches!(method, "POST" | "PUT" | "PATCH") {
        // A body-carrying method without a length would leave the server waiting for one.
        r.push_str("Content-Length: 0\r\n");
    }
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.resize(r.len() + spec.request_bytes, b'x');
    r
}

/// A request's outcome: bytes sent and received, or why it failed.
pub(crate) type Exchange = Result<(u64, u64), ErrorKind>;

pub(crate) struct Conn {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

const BUF: usize = 16 * 1024;
/// A response head larger than this is not something a benchmark target sends.
const MAX_HEAD: usize = 1024 * 1024;

fn io_err(e: io::Error) -> ErrorKind {
    ErrorKind::of_io(&e)
}

impl Conn {
    pub fn new() -> Conn {
        Conn {
            stream: None,
            buf: Vec::with_capacity(BUF),
        }
    }

    /// Forgets the connection (after an error or a timeout): the next request opens a new one.
    pub fn drop_stream(&mut self) {
        self.stream = None;
    }

    async fn stream(&mut self, sh: &Shared) -> Result<&mut TcpStream, ErrorKind> {
        if self.stream.is_none() {
            self.stream = Some(sh.open().await.map_err(io_err)?);
        }
        self.stream.as_mut().ok_or(ErrorKind::Other)
    }

    /// One HTTP/1.1 request and its whole response. 4xx and 5xx are errors, but the
    /// connection stays usable.
    pub async fn http(&mut self, sh: &Shared, churn: bool) -> Exchange {
        if churn {
            self.stream = None;
        }
        let r = self.http_inner(sh, churn).await;
        if matches!(r, Err(k) if !matches!(k, ErrorKind::Http4xx | ErrorKind::Http5xx)) {
            self.stream = None;
        }
        r
    }

    async fn http_inner(&mut self, sh: &Shared, churn: bool) -> Exchange {
        let req = if churn {
            &sh.close_request
        } else {
            &sh.request
        };
        self.stream(sh).await?;
        let Conn { stream, buf } = self;
        let Some(stream) = stream.as_mut() else {
            return Err(ErrorKind::Other);
        };
        stream.write_all(req).await.map_err(io_err)?;
        buf.clear();
        let mut rcvd = 0u64;
        let (head, status, framing, close) = loop {
            if !buf.is_empty() {
                match parse_head(buf)? {
                    Some(h) if (100..200).contains(&h.1) && h.1 != 101 => {
                        // Interim response (100 Continue): the real one follows.
                        buf.drain(..h.0);
                        continue;
                    }
                    Some(h) => break h,
                    None if buf.len() > MAX_HEAD => return Err(ErrorKind::Other),
                    None => {}
                }
            }
            rcvd += read_more(stream, buf).await?;
        };
        buf.drain(..head);
        match framing {
            Framing::Length(mut left) => loop {
                let have = buf.len() as u64;
                if have >= left {
                    buf.drain(..left as usize);
                    break;
                }
                left -= have;
                buf.clear();
                rcvd += read_more(stream, buf).await?;
            },
            Framing::Chunked => {
                let mut st = Chunked::Size;
                loop {
                    let used = chunked_step(&mut st, buf)?;
                    buf.drain(..used);
                    if st == Chunked::Done {
                        break;
                    }
                    rcvd += read_more(stream, buf).await?;
                }
            }
            Framing::UntilClose => loop {
                buf.clear();
                match stream.read_buf(buf).await {
                    Ok(0) => break,
                    Ok(n) => rcvd += n as u64,
                    Err(e) => return Err(io_err(e)),
                }
            },
        }
        if close || framing == Framing::UntilClose {
            self.stream = None;
        } else if buf.is_empty() {
            forget_readable(stream);
        }
        match status {
            400..=499 => Err(ErrorKind::Http4xx),
            500..=599 => Err(ErrorKind::Http5xx),
            _ => Ok((req.len() as u64, rcvd)),
        }
    }

    /// After a churn request: lets the server close first, so the TIME_WAIT stays on its side
    /// and a long churn run does not run out of local ports.
    pub async fn close_after_churn(&mut self) {
        if let Some(mut s) = self.stream.take() {
            let mut b = [0u8; 512];
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// tcp-rr: write the request, read exactly the response size.
    pub async fn rr(&mut self, sh: &Shared) -> Exchange {
        let r = self.rr_inner(sh).await;
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    async fn rr_inner(&mut self, sh: &Shared) -> Exchange {
        self.stream(sh).await?;
        let Conn { stream, buf } = self;
        let Some(stream) = stream.as_mut() else {
            return Err(ErrorKind::Other);
        };
        stream.write_all(&sh.request).await.map_err(io_err)?;
        buf.resize(sh.rr_response, 0);
        stream.read_exact(buf).await.map_err(io_err)?;
        forget_readable(stream);
        Ok((sh.request.len() as u64, sh.rr_response as u64))
    }

    /// tcp-stream: one write of the whole buffer.
    pub async fn write_chunk(&mut self, sh: &Shared) -> Exchange {
        let r = async {
            let s = self.stream(sh).await?;
            s.write_all(&sh.request).await.map_err(io_err)?;
            Ok((sh.request.len() as u64, 0))
        }
        .await;
        if r.is_err() {
            self.stream = None;
        }
        r
    }
}

/// The whole response is read and nothing more can come before the next request: forget the
/// socket's readable state, or the next response's first read would be a wasted EAGAIN
/// syscall. (Should the server's FIN race with this, the next request sees the close as a
/// reset, as it would have anyway.)
fn forget_readable(stream: &TcpStream) {
    let _ = stream.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<u64, ErrorKind> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(BUF);
    }
    match stream.read_buf(buf).await {
        // The server closed before the response was whole.
        Ok(0) => Err(ErrorKind::Reset),
        Ok(n) => Ok(n as u64),
        Err(e) => Err(io_err(e)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// Head length, status, body framing, and whether the server closes after this response.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(usize, u16, Framing, bool)>, ErrorKind> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ErrorKind::Other),
    };
    let status = resp.code.unwrap_or(0);
    let mut close = resp.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| ErrorKind::Other)?;
            length = Some(v.trim().parse::<u64>().map_err(|_| ErrorKind::Other)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|b| *b == b',')
                .next_back()
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|b| *b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(l) = length {
        Framing::Length(l)
    } else {
        Framing::UntilClose
    };
    Ok(Some((n, status, framing, close)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Walks a chunked body as far as `b` allows; returns the bytes it consumed.
pub(crate) fn chunked_step(st: &mut Chunked, b: &[u8]) -> Result<usize, ErrorKind> {
    let mut i = 0;
    loop {
        match *st {
            Chunked::Size => {
                let Some(end) = find_crlf(&b[i..]) else {
                    return if b.len() - i > 4096 {
                        Err(ErrorKind::Other)
                    } else {
                        Ok(i)
                    };
                };
                let line = &b[i..i + end];
                let hex = line
                    .split(|c| *c == b';')
                    .next()
                    .unwrap_or(line)
                    .trim_ascii();
                let hex = std::str::from_utf8(hex).map_err(|_| ErrorKind::Other)?;
                if hex.is_empty() || hex.len() > 15 {
                    return Err(ErrorKind::Other);
                }
                let size = u64::from_str_radix(hex, 16).map_err(|_| ErrorKind::Other)?;
                i += end + 2;
                *st = if size == 0 {
                    Chunked::Trailer
                } else {
                    Chunked::Data(size)
                };
            }
            Chunked::Data(n) => {
                let take = n.min((b.len() - i) as u64);
                i += take as usize;
                if take < n {
                    *st = Chunked::Data(n - take);
                    return Ok(i);
                }
                *st = Chunked::DataEnd;
            }
            Chunked::DataEnd => {
                if b.len() - i < 2 {
                    return Ok(i);
                }
                if &b[i..i + 2] != b"\r\n" {
                    return Err(ErrorKind::Other);
                }
                i += 2;
                *st = Chunked::Size;
            }
            Chunked::Trailer => {
                let Some(end) = find_crlf(&b[i..]) else {
                    return Ok(i);
                };
                i += end + 2;
                if end == 0 {
                    *st = Chunked::Done;
                }
            }
            Chunked::Done => return Ok(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Mode;

    #[test]
    fn chunked_in_pieces() {
        let body = b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nx-trailer: 1\r\n\r\n";
        // Feed it one byte more each time, keeping what was not consumed, as the client does.
        let mut st = Chunked::Size;
        let mut pending = Vec::new();
        for &b in body.iter() {
            pending.push(b);
            let used = chunked_step(&mut st, &pending).expect("valid");
            pending.drain(..used);
        }
        assert_eq!(st, Chunked::Done);
        assert!(pending.is_empty());
        let mut st = Chunked::Size;
        assert!(chunked_step(&mut st, b"zz\r\n").is_err());
        let mut st = Chunked::Size;
        assert!(chunked_step(&mut st, b"1\r\nabc").is_err());
    }

    #[test]
    fn heads() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello").expect("ok");
        assert_eq!(
            h.map(|h| (h.1, h.2, h.3)),
            Some((200, Framing::Length(12), false))
        );
        let h = parse_head(
            b"HTTP/1.1 503 x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(
            h.ok().flatten().map(|h| (h.1, h.2, h.3)),
            Some((503, Framing::Chunked, true))
        );
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(
            h.ok().flatten().map(|h| (h.2, h.3)),
            Some((Framing::UntilClose, true))
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nConte").ok(), Some(None));
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn builds_requests() {
        let t = Target::parse("http://example:8080/p").expect("parses");
        let mut s = LoadSpec::new(t, Mode::Closed);
        s.response_bytes = Some(100);
        s.request_bytes = 3;
        s.headers.push(("x-a".into(), "b".into()));
        let r = String::from_utf8(http_request(&s, true)).expect("utf8");
        assert_eq!(
            r,
            "POST /p HTTP/1.1\r\nHost: example:8080\r\nx-a: b\r\nx-echo-bytes: 100\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: 3\r\n\
             Connection: close\r\n\r\nxxx"
        );
    }

    #[test]
    fn a_bodyless_post_says_its_length() {
        let t = Target::parse("http://example:8080/pay").expect("parses");
        let mut s = LoadSpec::new(t, Mode::Closed);
        s.method = Some("POST".into());
        let r = String::from_utf8(http_request(&s, false)).expect("utf8");
        assert_eq!(
            r,
            "POST /pay HTTP/1.1\r\nHost: example:8080\r\nContent-Length: 0\r\n\r\n"
        );
        s.method = Some("post".into());
        assert!(s.validate().is_err(), "lower-case method is refused");
    }
}
