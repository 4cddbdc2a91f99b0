//! The real server for a benchmark: on a loopback port the kernel picks, on a thread of
//! its own for the rest of the run.

use std::net::SocketAddr;
use std::sync::mpsc;

use dcledger::server::{ServeConfig, bind, serve};

/// Starts serving `config` on 127.0.0.1 and returns the address once it listens.
pub fn start(config: ServeConfig) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let bound = bind("127.0.0.1:0").expect("bind");
        serve(
            bound,
            config,
            Box::new(move |addr, _| tx.send(addr).unwrap_or(())),
        )
        .expect("serve");
    });
    rx.recv().expect("server started")
}
