//! Which policy decided each connection or request, as the proxies enforced it: what
//! `meshsim reach` names beside every outcome (Envoy writes it as the RBAC filter's
//! `rbac_access_denied_matched_policy[…]` response detail, ztunnel as its "policy rejection"
//! log line). Off unless a caller turns it on, so a run does not keep every request.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::mesh::policy::{Reason, RuleRef, Verdict};

/// One decision of one proxy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// The proxy that decided: `sidecar web-0`, `ztunnel node-1`, `waypoint payments-waypoint`.
    pub proxy: String,
    /// The address the connection came from, as that proxy saw it.
    pub src_ip: Option<IpAddr>,
    pub port: u16,
    /// `METHOD /path` where the proxy saw HTTP.
    pub request: Option<String>,
    pub allowed: bool,
    /// What decided, e.g. `DENY payments/no-legacy rule 0`, `no ALLOW rule matched`,
    /// `PeerAuthentication STRICT`.
    pub by: String,
    /// The connection reached this proxy over mutual TLS (legacy mTLS or HBONE): what Istio's
    /// `connection_security_policy` says (`mutual_tls` / `none`).
    pub mtls: bool,
}

/// The decisions of one cluster, in order.
#[derive(Debug, Default)]
pub struct DecisionLog {
    on: AtomicBool,
    records: Mutex<Vec<Record>>,
}

/// At most this many records are kept; older ones are dropped (a probe reads its own at once).
const KEEP: usize = 100_000;

impl DecisionLog {
    /// Starts keeping records.
    pub fn enable(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Keeps the record `make` builds — built only when the log is on, so the proxies' hot
    /// paths format nothing in a run.
    pub fn record(&self, make: impl FnOnce() -> Record) {
        if !self.enabled() {
            return;
        }
        let r = make();
        let mut v = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() >= KEEP {
            v.drain(..KEEP / 2);
        }
        v.push(r);
    }

    /// Everything recorded so far, and clears it.
    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn rule(r: &RuleRef) -> String {
    format!("{} rule {}", r.policy, r.rule)
}

/// A verdict's reason in words.
pub fn describe(v: &Verdict) -> String {
    match &v.reason {
        Reason::Denied(r) => format!("DENY {}", rule(r)),
        Reason::Allowed(r) => format!("ALLOW {}", rule(r)),
        Reason::NoAllowPolicies => "no ALLOW policy applies".to_string(),
        Reason::NoAllowMatched => "no ALLOW rule matched".to_string(),
    }
}
