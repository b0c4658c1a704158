//! `ops/federation.sh`, the README's federation command, run to its end: three node processes
//! come up, adopt each other, and the tour's cross-region order is claimed, paid by the agency's
//! region and settled by a statement both regions sign and pay.

use std::net::TcpListener;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_vledger");

/// A first port of three free consecutive ones (held only while checked).
fn three_free_ports() -> u16 {
    (20_000..60_000u16)
        .step_by(7)
        .map(|base| base + (std::process::id() % 7) as u16)
        .find(|base| {
            (0..3)
                .map(|i| TcpListener::bind(("127.0.0.1", base + i)))
                .all(|bound| bound.is_ok())
        })
        .expect("three free consecutive ports")
}

#[test]
fn the_federation_tour_settles_a_cross_region_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/federation.sh"))
        .arg(dir.path().join("federation"))
        .env("VLEDGER_BIN", BIN)
        .env("VLEDGER_FEDERATION_EXIT", "1")
        .env("VLEDGER_FEDERATION_PORT", three_free_ports().to_string())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    for region in ["cq", "sc", "cd"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("region {region} http://127.0.0.1:"))),
            "{stdout}"
        );
    }
    let paid = stderr
        .lines()
        .find(|l| l.starts_with("statement ") && l.contains(" is paid"));
    assert!(paid.is_some(), "{stderr}");
    assert!(
        stderr.contains("voucher share paid to the lab by Chengdu ¥1,000.00"),
        "{stderr}"
    );
    assert!(stderr.contains("position: cq owes cd ¥0.00"), "{stderr}");
}
