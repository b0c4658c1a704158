//! What the tests of the `vledger` binary share: a free loopback port, waiting for a started
//! node to answer, and the admin key a `--demo` node made. Each test file uses part of it.
#![allow(dead_code)]

pub mod region_node;

use std::path::Path;
use std::time::{Duration, Instant};

use vledger_tlog::keys::SigningKey;

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits, at most 30 s, until the node at `url` answers `GET /healthz` with a success.
pub fn wait_until_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(format!("{url}/healthz"))
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the node did not become healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The admin key a node started with `--demo --data DATA` wrote to DATA/keys/admin.pem.
pub fn demo_admin(data: &Path) -> SigningKey {
    let pem = std::fs::read_to_string(data.join("keys/admin.pem")).unwrap();
    SigningKey::from_pkcs8_pem(&pem).unwrap()
}
