//! The load generator's HTTP/1.1 response handling on arbitrary bytes as a server would send
//! them: the head parser, then (for a chunked body) the chunked-body walker. Checks what the
//! client relies on: a head never claims more bytes than it was given; a complete head split
//! in two reads (any cut before its end) is "incomplete", never an error or another head; a
//! chunked body walks the same whether it arrives at once or a byte at a time.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loadgen::fuzzing::{BodyFraming, parse_response_head, walk_chunked};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(head)) = parse_response_head(data) else {
        return;
    };
    assert!(head.len <= data.len(), "head longer than the input");
    assert_eq!(
        parse_response_head(&data[..head.len]),
        Ok(Some(head)),
        "the head alone parses the same"
    );
    for cut in [1, head.len / 2, head.len.saturating_sub(1)] {
        if cut > 0 && cut < head.len {
            assert_eq!(
                parse_response_head(&data[..cut]),
                Ok(None),
                "a head cut at {cut} of {} is incomplete",
                head.len
            );
        }
    }
    if head.framing == BodyFraming::Chunked {
        let body = &data[head.len..];
        let whole = walk_chunked([body]);
        if let Ok((n, true)) = whole {
            assert!(n <= body.len());
            assert_eq!(
                walk_chunked(body.chunks(1)),
                Ok((n, true)),
                "byte-at-a-time walk differs from the whole-buffer walk"
            );
        }
    }
});
