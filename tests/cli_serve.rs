//! `meshsim serve`: the scenario's apps on their own, with `app:`'s settings as flags, as an
//! exported cluster's pods run them.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `meshsim serve ARGS --port P` until it accepts connections.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (Served, u16) {
    let port = free_port();
    let child = Command::new(common::meshsim())
        .arg("serve")
        .args(args)
        .args(["--port", &port.to_string()])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("meshsim serve starts");
    let served = Served(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "meshsim serve never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    (served, port)
}

fn exchange(port: u16, send: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(send).expect("write");
    let mut out = vec![0u8; 4096];
    let mut got = Vec::new();
    while let Ok(n) = s.read(&mut out) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&out[..n]);
        if !send.starts_with(b"GET") && got.len() >= send.len() {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The HTTP echo answers with the status, size and delay `app: {http: …}` gives it, names
/// its pod from the downward API's `POD_NAME`/`POD_NAMESPACE` (as the exported Deployments
/// set them), and honours a request's `x-echo-bytes`.
#[test]
fn the_http_echo_answers_as_the_scenarios_app_would() {
    let (_s, port) = serve(
        &[
            "http",
            "--response-bytes",
            "300",
            "--status",
            "201",
            "--service-time",
            "50ms",
        ],
        &[("POD_NAME", "echo-7c9f8d-x2k4q"), ("POD_NAMESPACE", "shop")],
    );
    let t = Instant::now();
    let r = exchange(
        port,
        b"GET / HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n",
    );
    assert!(t.elapsed() >= Duration::from_millis(50), "service time");
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    assert!(r.contains("x-meshsim-pod: echo-7c9f8d-x2k4q"), "{r}");
    assert!(r.contains("content-length: 300"), "{r}");
    assert!(
        r.contains("hello from echo-7c9f8d-x2k4q (shop/echo)"),
        "{r}"
    );
    let r = exchange(
        port,
        b"GET / HTTP/1.1\r\nHost: echo\r\nx-echo-bytes: 12\r\nConnection: close\r\n\r\n",
    );
    assert!(r.contains("content-length: 12"), "{r}");
}

#[test]
fn the_tcp_echo_sends_back_what_it_reads() {
    let (_s, port) = serve(&["tcp-echo"], &[]);
    assert_eq!(exchange(port, b"ping over tcp"), "ping over tcp");
}

#[test]
fn a_port_in_use_is_one_clear_error() {
    let taken = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = Command::new(common::meshsim())
        .args(["serve", "tcp-sink", "--port", &port.to_string()])
        .output()
        .expect("meshsim runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot listen on 0.0.0.0:") && err.contains("in use"),
        "{err}"
    );
}
