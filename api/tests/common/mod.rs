//! What the HTTP tests share: a real node of region `cq` with a temporary store, serving on a
//! random loopback port.

use std::sync::Arc;

use vledger_ledger::domain::GenesisBody;
use vledger_ledger::keys::SigningKey;
use vledger_ledger::node::{Node, NodeConfig};

/// A running node: its base URL and the directory that holds its store.
pub struct Served {
    pub base: String,
    pub dir: tempfile::TempDir,
}

/// A new random key.
pub fn fresh_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Founds region `cq` with `admin` as its first admin and serves it until the test ends.
pub async fn serve_node(admin: &SigningKey) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(NodeConfig {
        data_dir: dir.path().join("db"),
        region: "cq".try_into().unwrap(),
        origin: "vledger.test/cq".into(),
        node_key: fresh_key(),
        genesis: Some(GenesisBody {
            region_name: "重庆市科学技术局".into(),
            admin_key: admin.public_key(),
            admin_name: "CQ admin".into(),
            time_zone: "Asia/Shanghai".into(),
        }),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(vledger_api::serve(
        listener,
        Arc::clone(&node),
        std::future::pending(),
    ));
    Served { base, dir }
}
