//! Runs the RFC 6962 / RFC 9162 proof vectors from transparency-dev/merkle (Apache License
//! 2.0, see `tests/data/merkle/README.md`) against the verifier, and checks that proof
//! generation reproduces every happy-path proof from the Certificate Transparency test leaves.

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;
use vledger_tlog::merkle::{
    consistency_proof, hash_from_slice, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion, Hash, MemoryTree, ProofError, SubtreeSource,
};

/// Vectors whose expectation this verifier deliberately does not follow, with the error it
/// gives instead. Each entry must still be present and must fail exactly this way.
///
/// `sizes-are-equal-one-and-proof-is-empty` expects success for two equal 12-byte roots
/// ("don't care 2"). Here every hash must be exactly 32 bytes, so decoding the roots fails;
/// the property that vector is about (equal sizes, equal roots, empty proof) is covered with
/// real hashes by `equal_sizes_with_equal_roots_and_empty_proof`.
const DEVIATIONS: &[(&str, ProofError)] = &[(
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json",
    ProofError::BadHashLength { len: 12 },
)];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/merkle")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "json") {
            out.push(path);
        }
    }
}

fn all_vectors() -> Vec<(String, Value)> {
    let dir = data_dir();
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = fs::read_to_string(&path).unwrap();
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: bad JSON: {e}"));
            (name, value)
        })
        .collect()
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    let s = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string"));
    STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("{field}: bad base64: {e}"))
}

fn number(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a number"))
}

fn hash(v: &Value, field: &str) -> Result<Hash, ProofError> {
    hash_from_slice(&bytes(v, field))
}

/// The proof array; `null` means an empty proof.
fn proof(v: &Value) -> Result<Vec<Hash>, ProofError> {
    match &v["proof"] {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let s = item.as_str().expect("proof item is not a string");
                hash_from_slice(&STANDARD.decode(s).expect("proof item: bad base64"))
            })
            .collect(),
        other => panic!("proof is neither null nor an array: {other}"),
    }
}

fn check_inclusion(v: &Value) -> Result<(), ProofError> {
    let leaf = hash(v, "leafHash")?;
    let root = hash(v, "root")?;
    let proof = proof(v)?;
    verify_inclusion(
        &leaf,
        number(v, "leafIdx"),
        number(v, "treeSize"),
        &proof,
        &root,
    )
}

fn check_consistency(v: &Value) -> Result<(), ProofError> {
    let root1 = hash(v, "root1")?;
    let root2 = hash(v, "root2")?;
    let proof = proof(v)?;
    verify_consistency(
        number(v, "size1"),
        number(v, "size2"),
        &root1,
        &root2,
        &proof,
    )
}

fn check(name: &str, v: &Value) -> Result<(), ProofError> {
    if name.starts_with("inclusion/") {
        check_inclusion(v)
    } else if name.starts_with("consistency/") {
        check_consistency(v)
    } else {
        panic!("{name}: unknown vector kind");
    }
}

#[test]
fn verifier_follows_vectors() {
    let vectors = all_vectors();
    let mut checked = 0;
    let mut deviations_seen = 0;
    let mut failures = Vec::new();
    for (name, v) in &vectors {
        let want_err = v["wantErr"]
            .as_bool()
            .unwrap_or_else(|| panic!("{name}: wantErr is not a bool"));
        let got = check(name, v);
        checked += 1;
        if let Some((_, err)) = DEVIATIONS.iter().find(|(n, _)| n == name) {
            deviations_seen += 1;
            assert!(
                !want_err,
                "{name}: listed as a deviation but already expects an error"
            );
            assert_eq!(
                got.as_ref(),
                Err(err),
                "{name}: deviation fails differently"
            );
            continue;
        }
        match (want_err, &got) {
            (false, Ok(())) | (true, Err(_)) => {}
            (false, Err(e)) => failures.push(format!("{name}: rejected a valid proof: {e}")),
            (true, Ok(())) => failures.push(format!("{name}: accepted an invalid proof")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        deviations_seen,
        DEVIATIONS.len(),
        "a listed deviation is missing"
    );
    assert!(checked > 150, "only {checked} vector files were checked");
}

/// What the one deviating vector checks, with real 32-byte roots.
#[test]
fn equal_sizes_with_equal_roots_and_empty_proof() {
    let r = leaf_hash(b"don't care");
    assert_eq!(verify_consistency(1, 1, &r, &r, &[]), Ok(()));
    assert_eq!(verify_consistency(7, 7, &r, &r, &[]), Ok(()));
}

/// The classic Certificate Transparency test leaves behind the vectors.
fn ct_tree() -> MemoryTree {
    let entries: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    let mut tree = MemoryTree::new();
    for entry in entries {
        tree.append(entry);
    }
    tree
}

#[test]
fn ct_leaves_root() {
    let tree = ct_tree();
    let hex: String = tree.root().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    assert_eq!(root(&tree, 8).unwrap(), tree.root());
}

#[test]
fn generation_reproduces_happy_paths() {
    let tree = ct_tree();
    let mut reproduced = 0;
    for (name, v) in all_vectors() {
        if !name.ends_with("/happy-path.json") {
            continue;
        }
        let want_proof = proof(&v).unwrap();
        if name.starts_with("inclusion/") {
            let (index, size) = (number(&v, "leafIdx"), number(&v, "treeSize"));
            let leaf = tree.perfect_subtree(0, index).unwrap();
            assert_eq!(leaf, hash(&v, "leafHash").unwrap(), "{name}: leaf hash");
            assert_eq!(
                root(&tree, size).unwrap(),
                hash(&v, "root").unwrap(),
                "{name}: root"
            );
            assert_eq!(
                inclusion_proof(&tree, index, size).unwrap(),
                want_proof,
                "{name}: proof"
            );
        } else {
            let (size1, size2) = (number(&v, "size1"), number(&v, "size2"));
            assert_eq!(
                root(&tree, size1).unwrap(),
                hash(&v, "root1").unwrap(),
                "{name}: root1"
            );
            assert_eq!(
                root(&tree, size2).unwrap(),
                hash(&v, "root2").unwrap(),
                "{name}: root2"
            );
            assert_eq!(
                consistency_proof(&tree, size1, size2).unwrap(),
                want_proof,
                "{name}: proof"
            );
        }
        reproduced += 1;
    }
    // inclusion/0..=4 and consistency/0..=4.
    assert_eq!(reproduced, 10);
}
