//! HdrHistogram's interchange encoding: V2 compressed, base64 ("HISTFAAA...").
//!
//! The whole histogram is kept in `run.json` so any percentile can be read later; this is
//! the same encoding HdrHistogram's Java/Go/C tools read, so a histogram can be pasted into
//! them too.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};

/// Lowest and highest trackable latency in microseconds, and precision, as DESIGN.md fixes them
/// (1 µs .. 60 s, 3 significant digits).
pub const LOWEST_US: u64 = 1;
pub const HIGHEST_US: u64 = 60_000_000;
pub const SIGFIG: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error(
        "latency histogram is not valid base64 ({0}); the run.json was probably edited by hand or truncated"
    )]
    Base64(base64::DecodeError),
    #[error(
        "latency histogram is not a valid HdrHistogram V2 encoding ({0}); the run.json was probably edited by hand or truncated"
    )]
    Decode(String),
    #[error("could not encode a latency histogram: {0}")]
    Encode(String),
    #[error("could not create a latency histogram: {0}")]
    Create(String),
}

/// An empty histogram with meshsim's bounds.
pub fn new_histogram() -> Result<Histogram<u64>, HistogramError> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG)
        .map_err(|e| HistogramError::Create(format!("{e:?}")))
}

/// Encode as base64 V2-deflate, HdrHistogram's interchange format.
pub fn encode(h: &Histogram<u64>) -> Result<String, HistogramError> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| HistogramError::Encode(format!("{e:?}")))?;
    Ok(STANDARD.encode(buf))
}

/// Decode base64 V2 (compressed or not). An empty string decodes to an empty histogram, so a
/// step that recorded nothing still renders.
pub fn decode(s: &str) -> Result<Histogram<u64>, HistogramError> {
    if s.trim().is_empty() {
        return new_histogram();
    }
    let bytes = STANDARD.decode(s.trim()).map_err(HistogramError::Base64)?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| HistogramError::Decode(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_counts_and_percentiles() {
        let mut h = new_histogram().unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 3).unwrap();
        }
        let s = encode(&h).unwrap();
        assert!(s.starts_with("HISTFAAA"), "{}", &s[..16]);
        let back = decode(&s).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert_eq!(encode(&back).unwrap(), s, "encoding is deterministic");
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = decode("not base64 !!").unwrap_err().to_string();
        assert!(e.contains("base64"), "{e}");
        let e = decode("AAAA").unwrap_err().to_string();
        assert!(e.contains("HdrHistogram"), "{e}");
    }
}
