//! Property tests of the Merkle tree: generated inclusion and consistency proofs verify at
//! random sizes, and tampering with a proof hash, the index or a size makes them fail.

use std::sync::OnceLock;

use proptest::prelude::*;
use vledger_tlog::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
    Frontier, Hash, MemoryTree, ProofError,
};

const MAX_SIZE: u64 = 3000;

/// One tree of `MAX_SIZE` leaves, queried at every smaller size (a tree's prefix is the
/// smaller tree), plus the root at every size.
struct Fixture {
    tree: MemoryTree,
    roots: Vec<Hash>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut tree = MemoryTree::new();
        let mut roots = vec![tree.root()];
        for i in 0..MAX_SIZE {
            tree.append(format!("entry {i}").as_bytes());
            roots.push(tree.root());
        }
        Fixture { tree, roots }
    })
}

fn leaf(index: u64) -> Hash {
    leaf_hash(format!("entry {index}").as_bytes())
}

/// A tree size and a leaf index inside it.
fn size_and_index() -> impl Strategy<Value = (u64, u64)> {
    (1..=MAX_SIZE).prop_flat_map(|size| (Just(size), 0..size))
}

/// Old and new sizes with `1 <= old <= new`.
fn old_and_new() -> impl Strategy<Value = (u64, u64)> {
    (1..=MAX_SIZE).prop_flat_map(|new| (1..=new, Just(new)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs_verify((size, index) in size_and_index()) {
        let f = fixture();
        let root_hash = f.roots[size as usize];
        prop_assert_eq!(root(&f.tree, size).unwrap(), root_hash);
        let proof = inclusion_proof(&f.tree, index, size).unwrap();
        prop_assert!(proof.len() <= 64 - (size - 1).leading_zeros() as usize);
        prop_assert_eq!(verify_inclusion(&leaf(index), index, size, &proof, &root_hash), Ok(()));
    }

    #[test]
    fn inclusion_flipped_bit_fails(
        (size, index) in size_and_index(),
        which in any::<prop::sample::Index>(),
        byte in 0..32usize,
        bit in 0..8u8,
    ) {
        let f = fixture();
        let mut proof = inclusion_proof(&f.tree, index, size).unwrap();
        prop_assume!(!proof.is_empty());
        let i = which.index(proof.len());
        proof[i][byte] ^= 1 << bit;
        prop_assert_eq!(
            verify_inclusion(&leaf(index), index, size, &proof, &f.roots[size as usize]),
            Err(ProofError::RootMismatch)
        );
    }

    #[test]
    fn inclusion_wrong_index_fails((size, index) in size_and_index(), other in 0..MAX_SIZE + 2) {
        prop_assume!(other != index);
        let f = fixture();
        let proof = inclusion_proof(&f.tree, index, size).unwrap();
        prop_assert!(
            verify_inclusion(&leaf(index), other, size, &proof, &f.roots[size as usize]).is_err()
        );
    }

    #[test]
    fn inclusion_wrong_size_fails((size, index) in size_and_index(), other in 1..=MAX_SIZE) {
        prop_assume!(other != size);
        let f = fixture();
        let proof = inclusion_proof(&f.tree, index, size).unwrap();
        // Claiming the proof is for a tree of another size, with that tree's root.
        prop_assert!(
            verify_inclusion(&leaf(index), index, other, &proof, &f.roots[other as usize]).is_err()
        );
        // With the original root, the claim fails whenever the other size changes the shape
        // of the proof. (A root alone does not commit to its tree size.)
        if index < other && inclusion_proof(&f.tree, index, other).unwrap().len() != proof.len() {
            let got = verify_inclusion(&leaf(index), index, other, &proof, &f.roots[size as usize]);
            let is_wrong_length = matches!(got, Err(ProofError::WrongProofLength { .. }));
            prop_assert!(is_wrong_length);
        }
    }

    #[test]
    fn consistency_proofs_verify((old, new) in old_and_new()) {
        let f = fixture();
        let proof = consistency_proof(&f.tree, old, new).unwrap();
        prop_assert!(proof.len() <= 1 + 64 - (new - 1).leading_zeros() as usize);
        prop_assert_eq!(
            verify_consistency(old, new, &f.roots[old as usize], &f.roots[new as usize], &proof),
            Ok(())
        );
    }

    #[test]
    fn consistency_flipped_bit_fails(
        (old, new) in old_and_new(),
        which in any::<prop::sample::Index>(),
        byte in 0..32usize,
        bit in 0..8u8,
    ) {
        let f = fixture();
        let mut proof = consistency_proof(&f.tree, old, new).unwrap();
        prop_assume!(!proof.is_empty());
        let i = which.index(proof.len());
        proof[i][byte] ^= 1 << bit;
        prop_assert!(
            verify_consistency(old, new, &f.roots[old as usize], &f.roots[new as usize], &proof)
                .is_err()
        );
    }

    #[test]
    fn consistency_wrong_old_size_fails((old, new) in old_and_new(), other in 0..=MAX_SIZE) {
        prop_assume!(other != old);
        let f = fixture();
        let proof = consistency_proof(&f.tree, old, new).unwrap();
        let (r1, r2) = (f.roots[old as usize], f.roots[new as usize]);
        prop_assert!(verify_consistency(other, new, &r1, &r2, &proof).is_err());
        prop_assert!(
            verify_consistency(other, new, &f.roots[other as usize], &r2, &proof).is_err()
        );
    }

    #[test]
    fn consistency_wrong_new_size_fails((old, new) in old_and_new(), other in 0..=MAX_SIZE) {
        prop_assume!(other != new);
        let f = fixture();
        let proof = consistency_proof(&f.tree, old, new).unwrap();
        let (r1, r2) = (f.roots[old as usize], f.roots[new as usize]);
        // Claiming the proof is for a new tree of another size, with that tree's root.
        prop_assert!(
            verify_consistency(old, other, &r1, &f.roots[other as usize], &proof).is_err()
        );
        // With the original new root, the claim fails whenever the other size changes the
        // shape of the proof. (A root alone does not commit to its tree size.)
        if old <= other && consistency_proof(&f.tree, old, other).unwrap().len() != proof.len() {
            let got = verify_consistency(old, other, &r1, &r2, &proof);
            let is_wrong_length = matches!(got, Err(ProofError::WrongProofLength { .. }));
            prop_assert!(is_wrong_length);
        }
    }

    #[test]
    fn frontier_load_matches_appends(size in 0..=MAX_SIZE) {
        let f = fixture();
        let loaded = Frontier::load(&f.tree, size).unwrap();
        prop_assert_eq!(loaded.size(), size);
        prop_assert_eq!(loaded.root(), f.roots[size as usize]);
        // Appending the rest from the loaded frontier reaches the same final root.
        let mut frontier = loaded;
        for i in size..(size + 50).min(MAX_SIZE) {
            frontier.append(leaf(i));
        }
        prop_assert_eq!(frontier.root(), f.roots[(size + 50).min(MAX_SIZE) as usize]);
    }
}
