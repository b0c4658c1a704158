//! The dependency rules of docs/ARCHITECTURE.md, checked on the workspace as Cargo resolves it
//! (`cargo metadata`) and on the sources, so that a wrong arrow fails the test suite:
//! - the crates stack in one order, each using only crates below it, and the client uses only
//!   the pure ones;
//! - the pure crates (`tlog`, `domain`, `wire`) reach no storage, HTTP, async runtime, logging
//!   or threads, not even through another crate, and read no clock;
//! - the client links neither RocksDB nor the server;
//! - the API reads state only through `Node` and the domain's queries, never the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The workspace's crates from the bottom up, with the workspace crates each may depend on
/// (normal dependencies; tests may use more).
const LAYERS: &[(&str, &[&str])] = &[
    ("vledger-tlog", &[]),
    ("vledger-domain", &["vledger-tlog"]),
    ("vledger-wire", &["vledger-tlog", "vledger-domain"]),
    (
        "vledger-node",
        &["vledger-tlog", "vledger-domain", "vledger-wire"],
    ),
    (
        "vledger-offline",
        &[
            "vledger-tlog",
            "vledger-domain",
            "vledger-wire",
            "vledger-node",
        ],
    ),
    (
        "vledger-federation",
        &[
            "vledger-tlog",
            "vledger-domain",
            "vledger-wire",
            "vledger-node",
            "vledger-offline",
        ],
    ),
    (
        "vledger-search",
        &[
            "vledger-tlog",
            "vledger-domain",
            "vledger-wire",
            "vledger-node",
        ],
    ),
    (
        "vledger-api",
        &[
            "vledger-tlog",
            "vledger-domain",
            "vledger-wire",
            "vledger-node",
            "vledger-offline",
            "vledger-federation",
            "vledger-search",
        ],
    ),
    (
        "vledger-client",
        &["vledger-tlog", "vledger-domain", "vledger-wire"],
    ),
    (
        "vledger",
        &[
            "vledger-tlog",
            "vledger-domain",
            "vledger-wire",
            "vledger-node",
            "vledger-offline",
            "vledger-federation",
            "vledger-search",
            "vledger-api",
            "vledger-client",
        ],
    ),
    (
        "vledger-benches",
        &[
            "vledger-tlog",
            "vledger-domain",
            "vledger-wire",
            "vledger-node",
            "vledger-federation",
            "vledger-search",
            "vledger-api",
            "vledger-client",
        ],
    ),
    (
        "vledger-proptests",
        &[
            "vledger-tlog",
            "vledger-domain",
            "vledger-wire",
            "vledger-offline",
        ],
    ),
];

/// Crates the pure crates must not reach, directly or through any other crate.
const IMPURE: &[&str] = &[
    "rocksdb",
    "librocksdb-sys",
    "axum",
    "hyper",
    "reqwest",
    "tokio",
    "tracing",
    "crossbeam-channel",
    "tempfile",
    "tantivy",
];

/// Crates the client must not reach.
const NOT_IN_CLIENT: &[&str] = &[
    "rocksdb",
    "librocksdb-sys",
    "axum",
    "tantivy",
    "vledger-api",
    "vledger-node",
    "vledger-search",
];

const PURE: &[&str] = &["vledger-tlog", "vledger-domain", "vledger-wire"];

fn metadata() -> Value {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |extra: &[&str]| {
        Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked"])
            .args(extra)
            .current_dir(root)
            .output()
            .expect("cargo metadata runs")
    };
    let mut output = run(&[]);
    if !output.status.success() {
        output = run(&["--offline"]);
    }
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata answers JSON")
}

/// The resolved graph: package id to (name, ids of its normal dependencies).
struct Graph {
    names: BTreeMap<String, String>,
    normal_deps: BTreeMap<String, Vec<String>>,
}

impl Graph {
    fn from_metadata(metadata: &Value) -> Self {
        let names = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_string(),
                    p["name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let normal_deps = metadata["resolve"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| {
                let deps = node["deps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| {
                        d["dep_kinds"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|k| k["kind"].is_null() || k["kind"] == "build")
                    })
                    .map(|d| d["pkg"].as_str().unwrap().to_string())
                    .collect();
                (node["id"].as_str().unwrap().to_string(), deps)
            })
            .collect();
        Self { names, normal_deps }
    }

    fn id(&self, name: &str) -> &str {
        let mut ids = self.names.iter().filter(|(_, n)| n.as_str() == name);
        let (id, _) = ids.next().unwrap_or_else(|| panic!("no package {name}"));
        id
    }

    fn direct(&self, name: &str) -> BTreeSet<String> {
        self.normal_deps[self.id(name)]
            .iter()
            .map(|id| self.names[id].clone())
            .collect()
    }

    /// Every crate `name` reaches through normal and build dependencies.
    fn reach(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.id(name).to_string()];
        while let Some(id) = todo.pop() {
            for dep in &self.normal_deps[&id] {
                if seen.insert(self.names[dep].clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    }
}

/// Every broken rule, in words.
fn broken_rules(metadata: &Value) -> Vec<String> {
    let graph = Graph::from_metadata(metadata);
    let mut broken = Vec::new();
    let workspace: BTreeSet<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
    for (name, allowed) in LAYERS {
        for dep in graph.direct(name) {
            if workspace.contains(dep.as_str()) && !allowed.contains(&dep.as_str()) {
                broken.push(format!("{name} depends on {dep}, which is not below it"));
            }
        }
    }
    for name in PURE {
        let reached = graph.reach(name);
        for impure in IMPURE {
            if reached.contains(*impure) {
                broken.push(format!("{name} is pure but reaches {impure}"));
            }
        }
    }
    let reached = graph.reach("vledger-client");
    for banned in NOT_IN_CLIENT {
        if reached.contains(*banned) {
            broken.push(format!("vledger-client reaches {banned}"));
        }
    }
    // chrono reads the system clock only with its `clock` feature (or its defaults).
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        if !PURE.contains(&name) {
            continue;
        }
        for dep in package["dependencies"].as_array().unwrap() {
            let clocked = dep["features"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "clock")
                || dep["uses_default_features"] == true;
            if dep["name"] == "chrono" && clocked {
                broken.push(format!("{name} takes chrono with its clock"));
            }
        }
    }
    broken
}

#[test]
fn the_workspace_keeps_its_dependency_rules() {
    let broken = broken_rules(&metadata());
    assert!(
        broken.is_empty(),
        "dependency rules broken:\n{}",
        broken.join("\n")
    );
}

/// The check itself: a pure crate given a storage dependency, or a crate given one above it,
/// fails it.
#[test]
fn a_storage_dependency_of_a_pure_crate_is_caught() {
    let original = metadata();
    let graph = Graph::from_metadata(&original);
    let rocksdb = graph.id("rocksdb").to_string();
    let node = graph.id("vledger-node").to_string();
    for (crate_name, added) in [
        ("vledger-domain", &rocksdb),
        ("vledger-tlog", &node),
        ("vledger-client", &node),
    ] {
        let mut doctored = original.clone();
        let id = graph.id(crate_name).to_string();
        let entry = doctored["resolve"]["nodes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|n| n["id"] == id.as_str())
            .unwrap();
        entry["deps"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "name": "added", "pkg": added, "dep_kinds": [{"kind": null, "target": null}]
            }));
        let broken = broken_rules(&doctored);
        assert!(
            broken.iter().any(|rule| rule.starts_with(crate_name)),
            "{crate_name} given {added}: {broken:?}"
        );
    }
}

/// Source lines of `dir` (recursively) that contain `needle`, outside comments.
fn lines_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (number, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if !code.starts_with("//") && code.contains(needle) {
                        found.push(format!("{}:{}: {}", path.display(), number + 1, code));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn only_the_node_reads_the_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for pure in ["tlog/src", "domain/src", "wire/src"] {
        for needle in [
            "SystemTime::now",
            "Instant::now",
            "Utc::now",
            "Local::now",
            "thread::spawn",
        ] {
            found.extend(lines_containing(&root.join(pure), needle));
        }
    }
    assert!(
        found.is_empty(),
        "a pure crate reads the clock or starts a thread:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_api_reads_state_through_the_node() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for needle in [
        "vledger_node::store",
        "Store::",
        ".store()",
        "scan_prefix",
        "_PREFIX",
    ] {
        found.extend(lines_containing(&root.join("api/src"), needle));
    }
    // The one prefix the API may name is its own problem types'.
    found.retain(|line| !line.contains("PROBLEM_TYPE_PREFIX"));
    assert!(
        found.is_empty(),
        "the API reaches past Node:\n{}",
        found.join("\n")
    );
}
