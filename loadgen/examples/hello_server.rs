//! A minimal HTTP/1.1 server for benches: answers every request with 200 and a 12-byte body
//! (or as many bytes as `x-echo-bytes` asks), keep-alive, on a multi-thread tokio runtime.
//!
//! cargo run --release -p meshsim-loadgen --features testing --example hello_server -- \
//!     [LISTEN=127.0.0.1:8080] [THREADS=2]

use loadgen::testing::{Kind, Server};

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let threads = match args.next().map(|t| t.parse::<usize>()) {
        None => 2,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("error: THREADS must be a number of at least 1");
            std::process::exit(2);
        }
    };
    match Server::start(Kind::Http, &listen, threads) {
        Ok(s) => {
            println!("listening on http://{}/ with {threads} threads", s.addr);
            s.wait();
        }
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            std::process::exit(2);
        }
    }
}
