//! Errors that stop a load run before it starts (or that make its results unreadable).
//! Failures of single requests are not errors here: they are counted by kind in the results.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot use target {target:?}: {reason}; write it as http://HOST:PORT/PATH or tcp://HOST:PORT"
    )]
    BadTarget { target: String, reason: String },
    #[error("cannot resolve {host:?}: {source}; check the name, or give an IP address")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    BadSpec(String),
    #[error("cannot set up the request timer: {0}; is this Linux with timerfd?")]
    Timer(#[source] io::Error),
    #[error("the load run was stopped: {0}")]
    Aborted(String),
    #[error(
        "cannot read histogram: {0}; it must be HdrHistogram's V2 interchange encoding in base64"
    )]
    Histogram(String),
}
