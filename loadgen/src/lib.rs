//! meshsim's load generator: knows nothing about meshes.
//!
//! Modules:
//! - `spec`: what to run ([`LoadSpec`], [`Target`], [`Protocol`], [`Mode`]) and the hooks a
//!   caller passes in ([`Hooks`]: a [`Connector`], a [`ProgressFn`], a cancellation token, a
//!   completed-requests counter)
//! - `engine`: [`run`]: open loop (fixed rate, rate steps, coordinated-omission corrected) and
//!   closed loop (`max`), one task per connection
//! - `client`: HTTP/1.1 (keep-alive or a connection per request), TCP request/response,
//!   TCP stream, on plain tokio sockets
//! - [`search`]: the highest rate meeting a criterion, by bracketing then bisecting steps
//!   (fed through [`Hooks::next_rate`])
//! - `schedule`: when each open-loop request is intended, a [`Surge`] window included
//! - `timer`: a microsecond-precise sleep (timerfd) for the open-loop schedule
//! - `record`: HDR histograms, per-second series, and the result types ([`LoadResult`],
//!   [`StepResult`], [`LatencySummary`])
//! - `testing` (feature `testing`): HTTP, TCP echo and TCP sink servers for tests and benches

mod client;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod record;
mod schedule;
pub mod search;
mod spec;
#[cfg(feature = "testing")]
pub mod testing;
mod timer;

pub use engine::{resolve, run};
pub use error::LoadError;
pub use record::{
    ErrorKind, IntervalSample, LatencySummary, LoadResult, MAX_US, StepResult, WarmupRecord,
    WarmupSecond,
};
pub use schedule::Surge;
pub use spec::{
    BoxFuture, Connector, Hooks, LoadSpec, Mode, NextRateFn, Progress, ProgressFn, Protocol, Target,
};
