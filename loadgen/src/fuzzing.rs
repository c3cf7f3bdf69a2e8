//! The HTTP/1.1 client's response parsing, reachable from outside the crate for the
//! `http1_response` fuzz target in `fuzz/`. Not an API: hidden from the docs, free to change.

use crate::client::{Chunked, Framing, chunked_step, parse_head};
use crate::record::ErrorKind;

/// How the body after a response head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Exactly this many bytes (also 0 for 1xx, 204 and 304).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// A complete response head as the client reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head, its final empty line included.
    pub len: usize,
    pub status: u16,
    pub framing: BodyFraming,
    /// The server closes the connection after this response.
    pub close: bool,
}

/// The client's head parser on `buf`: `Ok(None)` while the head is incomplete.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, ErrorKind> {
    Ok(
        parse_head(buf)?.map(|(len, status, framing, close)| ResponseHead {
            len,
            status,
            framing: match framing {
                Framing::Length(n) => BodyFraming::Length(n),
                Framing::Chunked => BodyFraming::Chunked,
                Framing::UntilClose => BodyFraming::UntilClose,
            },
            close,
        }),
    )
}

/// The client's chunked-body walker, fed `pieces` one after the other as reads would bring
/// them (each appended to what the previous steps left unconsumed). Returns the bytes it
/// consumed in all and whether the body (with its trailers) ended.
pub fn walk_chunked<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(usize, bool), ErrorKind> {
    let mut st = Chunked::Size;
    let mut pending = Vec::new();
    let mut consumed = 0;
    for piece in pieces {
        pending.extend_from_slice(piece);
        let used = chunked_step(&mut st, &pending)?;
        assert!(
            used <= pending.len(),
            "chunked_step consumed more than it was given"
        );
        pending.drain(..used);
        consumed += used;
        if st == Chunked::Done {
            break;
        }
    }
    Ok((consumed, st == Chunked::Done))
}
