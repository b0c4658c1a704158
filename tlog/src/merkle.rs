//! The ledger's Merkle tree: RFC 6962 / RFC 9162 hashing, tree roots, inclusion and
//! consistency proofs (generation and verification), and the in-memory right edge
//! ([`Frontier`]) that lets the single writer append in O(log n) without reading storage.
//!
//! The tree is stored by its caller as the hashes of *perfect subtrees*: the node at
//! `(level, index)` covers leaves `[index << level, (index + 1) << level)`, and level 0 holds
//! the leaf hashes. This module never stores anything itself; it reads those nodes through
//! [`SubtreeSource`] and hands back the nodes each append completes, for the caller to persist.
//! Every read path (root, proofs, [`Frontier::load`]) costs O(log n) reads, for any size up to
//! [`MAX_TREE_SIZE`].
//!
//! Hashing follows RFC 9162 section 2.1.1: a leaf hash is `SHA-256(0x00 || entry)`, an interior
//! node is `SHA-256(0x01 || left || right)` and the empty tree's root is `SHA-256("")`.

use std::collections::HashMap;
use std::convert::Infallible;

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// The length in bytes of a [`Hash`](type@Hash). Every hash this module accepts has exactly
/// this length.
pub const HASH_LEN: usize = 32;

pub use crate::limits::MAX_TREE_SIZE;

/// The level of the largest perfect subtree a tree of [`MAX_TREE_SIZE`] leaves can contain.
const MAX_LEVEL: u8 = 40;

/// The hash of one log entry: `SHA-256(0x00 || entry)`.
#[must_use]
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
#[must_use]
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Converts untrusted bytes (a decoded root, leaf hash or proof element) into a
/// [`Hash`](type@Hash).
///
/// Every hash must be exactly [`HASH_LEN`] bytes; anything else is
/// [`ProofError::BadHashLength`], including an empty slice.
///
/// # Errors
///
/// [`ProofError::BadHashLength`] if `bytes` is not exactly [`HASH_LEN`] long.
pub fn hash_from_slice(bytes: &[u8]) -> Result<Hash, ProofError> {
    Hash::try_from(bytes).map_err(|_| ProofError::BadHashLength { len: bytes.len() })
}

/// Read access to stored perfect-subtree hashes.
pub trait SubtreeSource {
    /// The error a failed read reports.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The hash of the perfect subtree at (level, index). Only called for subtrees that lie
    /// entirely inside the tree size the caller asked about.
    ///
    /// # Errors
    ///
    /// Whatever the storage behind the source reports.
    fn perfect_subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

impl<S: SubtreeSource + ?Sized> SubtreeSource for &S {
    type Error = S::Error;

    fn perfect_subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        (**self).perfect_subtree(level, index)
    }
}

/// Why computing a root, a proof or a [`Frontier`] from stored subtrees failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError<E> {
    /// The [`SubtreeSource`] failed to return a stored subtree hash.
    #[error("reading a stored subtree hash failed")]
    Source(#[source] E),
    /// The leaf index is not inside the tree (`index >= size`).
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    OutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size the index was checked against.
        size: u64,
    },
    /// A consistency proof was asked for from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizeDecreased {
        /// The size of the older tree.
        old_size: u64,
        /// The size of the newer tree.
        new_size: u64,
    },
    /// The tree size exceeds [`MAX_TREE_SIZE`].
    #[error("tree size {size} exceeds the maximum of {MAX_TREE_SIZE}")]
    TooLarge {
        /// The rejected tree size.
        size: u64,
    },
}

/// Why a proof failed to verify. Each variant is one distinct reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// A hash (root, leaf hash or proof element) is not exactly [`HASH_LEN`] bytes.
    #[error("hash has {len} bytes, expected {HASH_LEN}")]
    BadHashLength {
        /// The length of the rejected hash.
        len: usize,
    },
    /// The leaf index is not inside the tree (`index >= size`).
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The tree size exceeds [`MAX_TREE_SIZE`].
    #[error("tree size {size} exceeds the maximum of {MAX_TREE_SIZE}")]
    TreeTooLarge {
        /// The rejected tree size.
        size: u64,
    },
    /// The old tree of a consistency proof is larger than the new one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizeDecreased {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
    },
    /// A consistency proof from the empty tree (old size 0) was presented; see
    /// [`verify_consistency`] for why this verifier rejects it.
    #[error("consistency proofs from an empty tree (old size 0) are not accepted")]
    EmptyOldTree,
    /// The proof has the wrong number of hashes for the claimed index and sizes.
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength {
        /// The number of hashes the claimed index and sizes require.
        expected: usize,
        /// The number of hashes presented.
        actual: usize,
    },
    /// The root computed from the proof does not match the claimed root (the tree root for an
    /// inclusion proof, the new root for a consistency proof).
    #[error("computed root does not match the claimed root")]
    RootMismatch,
    /// The old root recomputed from a consistency proof does not match the claimed old root.
    #[error("computed old root does not match the claimed old root")]
    OldRootMismatch,
}

/// Largest power of two strictly less than `n`. Requires `n >= 2`.
fn split_point(n: u64) -> u64 {
    crate::self_check!(n >= 2);
    1 << (n - 1).ilog2()
}

/// Level of the power of two `k`.
fn level_of(k: u64) -> u8 {
    crate::self_check!(k.is_power_of_two());
    k.trailing_zeros() as u8
}

fn check_size<E>(size: u64) -> Result<(), TreeError<E>> {
    if size > MAX_TREE_SIZE {
        return Err(TreeError::TooLarge { size });
    }
    Ok(())
}

/// Reads the perfect subtree covering `[start, start + k)`, `k` a power of two and `start` a
/// multiple of `k`.
fn read_perfect<S: SubtreeSource>(
    src: &S,
    start: u64,
    k: u64,
) -> Result<Hash, TreeError<S::Error>> {
    let level = level_of(k);
    crate::self_check_eq!(start % k, 0, "perfect subtree must be aligned");
    src.perfect_subtree(level, start >> level)
        .map_err(TreeError::Source)
}

/// RFC 9162 MTH(D[start:end]) for a non-empty range whose perfect-subtree decomposition is
/// aligned (true for every range the RFC's recursion produces). Reads one stored node per set
/// bit of `end - start`.
fn range_hash<S: SubtreeSource>(
    src: &S,
    start: u64,
    end: u64,
) -> Result<Hash, TreeError<S::Error>> {
    crate::self_check!(start < end);
    // The range splits, left to right, into perfect subtrees of decreasing size, one per set
    // bit of its length; the RFC tree over them is a right-leaning fold.
    let mut parts = [[0u8; 32]; 64];
    let mut count = 0;
    let mut pos = start;
    let len = end - start;
    for level in (0..64u32).rev() {
        let k = 1u64 << level;
        if len & k != 0 {
            parts[count] = read_perfect(src, pos, k)?;
            count += 1;
            pos += k;
        }
    }
    crate::self_check_eq!(pos, end);
    Ok(fold_right(&parts[..count]))
}

/// Folds the perfect subtrees of a decomposition (largest first) into one root.
fn fold_right(parts: &[Hash]) -> Hash {
    match parts.split_last() {
        None => empty_root(),
        Some((last, rest)) => rest
            .iter()
            .rev()
            .fold(*last, |acc, left| node_hash(left, &acc)),
    }
}

/// The root of the tree with the first `size` leaves, from its perfect-subtree decomposition
/// (one read per set bit of `size`, at most 40). Size 0 gives [`empty_root`].
///
/// # Errors
///
/// [`TreeError::TooLarge`] above [`MAX_TREE_SIZE`]; [`TreeError::Source`] if a read fails.
pub fn root<S: SubtreeSource>(src: &S, size: u64) -> Result<Hash, TreeError<S::Error>> {
    check_size(size)?;
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// The inclusion proof of leaf `leaf_index` in the tree of `size` leaves: RFC 9162 section
/// 2.1.3.1 PATH, ordered from the leaf's sibling up to the root's child. Costs at most
/// 2 * 40 reads.
///
/// # Errors
///
/// [`TreeError::TooLarge`] above [`MAX_TREE_SIZE`], [`TreeError::OutOfRange`] if
/// `leaf_index >= size`, [`TreeError::Source`] if a read fails.
pub fn inclusion_proof<S: SubtreeSource>(
    src: &S,
    leaf_index: u64,
    size: u64,
) -> Result<Vec<Hash>, TreeError<S::Error>> {
    check_size(size)?;
    if leaf_index >= size {
        return Err(TreeError::OutOfRange {
            index: leaf_index,
            size,
        });
    }
    // Walk down from the root, collecting siblings top-down; PATH lists them bottom-up.
    let mut proof = Vec::new();
    let (mut start, mut end) = (0u64, size);
    while end - start > 1 {
        let k = split_point(end - start);
        if leaf_index < start + k {
            proof.push(range_hash(src, start + k, end)?);
            end = start + k;
        } else {
            proof.push(read_perfect(src, start, k)?);
            start += k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof between the trees of `old_size` and `new_size` leaves: RFC 9162
/// section 2.1.4.1 PROOF / SUBPROOF. `old_size == 0` or `old_size == new_size` gives an empty
/// proof. Costs at most 2 * 40 + 1 reads.
///
/// # Errors
///
/// [`TreeError::TooLarge`] if `new_size` is above [`MAX_TREE_SIZE`],
/// [`TreeError::SizeDecreased`] if `old_size > new_size`, [`TreeError::Source`] if a read
/// fails.
pub fn consistency_proof<S: SubtreeSource>(
    src: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, TreeError<S::Error>> {
    check_size(new_size)?;
    if old_size > new_size {
        return Err(TreeError::SizeDecreased { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end], b) with m = old_size - start, unrolled. Invariant:
    // start < old_size < end, so the range always has at least two leaves.
    let mut proof = Vec::new();
    let (mut start, mut end) = (0u64, new_size);
    let mut whole_old_tree = true;
    loop {
        if old_size == end {
            // m == n: the old tree's subtree itself, unless it is the whole old tree.
            if !whole_old_tree {
                proof.push(range_hash(src, start, end)?);
            }
            break;
        }
        let k = split_point(end - start);
        if old_size <= start + k {
            proof.push(range_hash(src, start + k, end)?);
            end = start + k;
        } else {
            proof.push(read_perfect(src, start, k)?);
            start += k;
            whole_old_tree = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Length of the inclusion proof for `index` in a tree of `size` leaves (`index < size`).
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // Levels below the point where the paths to `index` and to the last leaf diverge each
    // contribute a sibling; above it, one sibling per perfect subtree to the left.
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// Verifies an inclusion proof (RFC 9162 section 2.1.3.2): that `leaf_hash` is leaf number
/// `leaf_index` of the tree of `size` leaves whose root is `root`.
///
/// # Errors
///
/// In the order they are checked: [`ProofError::TreeTooLarge`],
/// [`ProofError::IndexOutOfRange`], [`ProofError::WrongProofLength`],
/// [`ProofError::RootMismatch`].
pub fn verify_inclusion(
    leaf_hash: &Hash,
    leaf_index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if size > MAX_TREE_SIZE {
        return Err(ProofError::TreeTooLarge { size });
    }
    if leaf_index >= size {
        return Err(ProofError::IndexOutOfRange {
            index: leaf_index,
            size,
        });
    }
    let expected = inclusion_proof_len(leaf_index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let (mut fnode, mut snode) = (leaf_index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            // Unreachable after the length check; kept so the loop stands on its own.
            return Err(ProofError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 section 2.1.4.2): that the tree of `new_size` leaves
/// with root `new_root` extends the tree of `old_size` leaves with root `old_root`.
///
/// `old_size == new_size` requires an empty proof and equal roots. `old_size == 0` is always
/// rejected with [`ProofError::EmptyOldTree`], even with an empty proof: a proof from the empty
/// tree proves nothing, and the reference test vectors reject it. The C2SP tlog-witness
/// protocol, by contrast, accepts an old size of 0 with an empty proof; code implementing that
/// protocol must handle that case itself, before calling this function.
///
/// # Errors
///
/// In the order they are checked: [`ProofError::TreeTooLarge`],
/// [`ProofError::SizeDecreased`], [`ProofError::EmptyOldTree`],
/// [`ProofError::WrongProofLength`], [`ProofError::OldRootMismatch`],
/// [`ProofError::RootMismatch`]. For equal sizes a root difference is
/// [`ProofError::RootMismatch`]; so is a wrong old root when `old_size` is a power of two,
/// because the old root is then itself an input to the recomputed new root.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if new_size > MAX_TREE_SIZE {
        return Err(ProofError::TreeTooLarge { size: new_size });
    }
    if old_size > new_size {
        return Err(ProofError::SizeDecreased { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }

    // The proof is the inclusion proof of leaf old_size - 1 in the new tree, minus the levels
    // inside the largest perfect subtree ending at old_size, plus that subtree's hash unless
    // it is the whole old tree (then the old root stands in for it).
    let shift = old_size.trailing_zeros();
    let inner = (64 - ((old_size - 1) ^ (new_size - 1)).leading_zeros()) - shift;
    let border = ((old_size - 1) >> (inner + shift)).count_ones();
    let old_is_perfect = old_size.is_power_of_two();
    let seeded = usize::from(!old_is_perfect);
    let expected = seeded + (inner + border) as usize;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }

    let (seed, rest) = if old_is_perfect {
        (*old_root, proof)
    } else {
        (proof[0], &proof[1..])
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if snode == 0 {
            // Unreachable after the length check; kept so the loop stands on its own.
            return Err(ProofError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if &fr != old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of the tree (the perfect subtrees that make up the current size), kept in
/// memory by the single writer so that an append needs no reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees making up `size`, largest (leftmost) first: one per set
    /// bit of `size`.
    nodes: Vec<Hash>,
}

impl Default for Frontier {
    fn default() -> Self {
        Self::empty()
    }
}

impl Frontier {
    /// The frontier of the empty tree.
    #[must_use]
    pub fn empty() -> Self {
        Frontier {
            size: 0,
            nodes: Vec::new(),
        }
    }

    /// Rebuilds the frontier of the tree with `size` leaves from stored subtrees: one read per
    /// set bit of `size` (at most 40).
    ///
    /// # Errors
    ///
    /// [`TreeError::TooLarge`] above [`MAX_TREE_SIZE`]; [`TreeError::Source`] if a read
    /// fails.
    pub fn load<S: SubtreeSource>(src: &S, size: u64) -> Result<Self, TreeError<S::Error>> {
        check_size(size)?;
        let mut nodes = Vec::with_capacity(size.count_ones() as usize);
        let mut pos = 0u64;
        for level in (0..=MAX_LEVEL).rev() {
            let k = 1u64 << level;
            if size & k != 0 {
                nodes.push(read_perfect(src, pos, k)?);
                pos += k;
            }
        }
        Ok(Frontier { size, nodes })
    }

    /// The number of leaves in the tree.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash; returns every perfect-subtree node this append completes,
    /// (level, index, hash), leaf included, for the caller to persist. The leaf comes first,
    /// then each completed node in increasing level.
    ///
    /// # Panics
    ///
    /// If the tree already holds [`MAX_TREE_SIZE`] leaves.
    pub fn append(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        assert!(
            self.size < MAX_TREE_SIZE,
            "Merkle tree is full ({MAX_TREE_SIZE} leaves)"
        );
        let mut completed = Vec::with_capacity(self.size.trailing_ones() as usize + 1);
        let mut hash = leaf;
        let mut level = 0u8;
        let mut index = self.size;
        completed.push((level, index, hash));
        // Each trailing one bit of the old size is a perfect subtree of the same level as the
        // node just completed, sitting to its left: merge them.
        while index & 1 == 1 {
            let left = self
                .nodes
                .pop()
                .expect("frontier holds one node per set bit of its size");
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed.push((level, index, hash));
        }
        self.nodes.push(hash);
        self.size += 1;
        completed
    }

    /// The root of the tree, computed from the frontier without reads.
    #[must_use]
    pub fn root(&self) -> Hash {
        fold_right(&self.nodes)
    }
}

/// A `HashMap`-backed [`SubtreeSource`] for tests and in-memory use: built by appending leaves
/// through a [`Frontier`].
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    frontier: Frontier,
    nodes: HashMap<(u8, u64), Hash>,
}

impl MemoryTree {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry (hashed with [`leaf_hash`]) and returns its leaf index.
    pub fn append(&mut self, entry: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(entry))
    }

    /// Appends an already computed leaf hash and returns its leaf index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.frontier.size();
        for (level, idx, hash) in self.frontier.append(leaf) {
            self.nodes.insert((level, idx), hash);
        }
        index
    }

    /// The number of leaves in the tree.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the whole tree.
    #[must_use]
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The frontier of the whole tree.
    #[must_use]
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }
}

impl SubtreeSource for MemoryTree {
    type Error = Infallible;

    /// # Panics
    ///
    /// If the subtree is not complete yet, i.e. the caller asked about a size larger than
    /// [`MemoryTree::size`].
    fn perfect_subtree(&self, level: u8, index: u64) -> Result<Hash, Infallible> {
        match self.nodes.get(&(level, index)) {
            Some(hash) => Ok(*hash),
            None => panic!(
                "perfect subtree ({level}, {index}) is not in a tree of size {}",
                self.size()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeSet;

    /// RFC 9162 2.1.1 MTH, straight from the definition.
    fn ref_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&ref_mth(&leaves[..k]), &ref_mth(&leaves[k..]))
            }
        }
    }

    /// RFC 9162 2.1.3.1 PATH.
    fn ref_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split_point(n as u64) as usize;
        if m < k {
            let mut p = ref_path(m, &leaves[..k]);
            p.push(ref_mth(&leaves[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &leaves[k..]);
            p.push(ref_mth(&leaves[..k]));
            p
        }
    }

    /// RFC 9162 2.1.4.1 SUBPROOF.
    fn ref_subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { Vec::new() } else { vec![ref_mth(leaves)] };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = ref_subproof(m, &leaves[..k], b);
            p.push(ref_mth(&leaves[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &leaves[k..], false);
            p.push(ref_mth(&leaves[..k]));
            p
        }
    }

    /// RFC 9162 2.1.4.1 PROOF.
    fn ref_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if m == 0 || m == leaves.len() {
            return Vec::new();
        }
        ref_subproof(m, leaves, true)
    }

    /// Wraps a source, enforcing the "only inside the asked size" contract and counting reads.
    struct Bounded<'a, S> {
        inner: &'a S,
        size: u64,
        reads: Cell<u64>,
    }

    impl<'a, S> Bounded<'a, S> {
        fn new(inner: &'a S, size: u64) -> Self {
            Bounded {
                inner,
                size,
                reads: Cell::new(0),
            }
        }
        fn take_reads(&self) -> u64 {
            self.reads.replace(0)
        }
    }

    impl<S: SubtreeSource> SubtreeSource for Bounded<'_, S> {
        type Error = S::Error;
        fn perfect_subtree(&self, level: u8, index: u64) -> Result<Hash, S::Error> {
            assert!(level <= MAX_LEVEL, "level {level} too high");
            let end = (index + 1) << level;
            assert!(
                end <= self.size,
                "read of ({level}, {index}) outside size {}",
                self.size
            );
            self.reads.set(self.reads.get() + 1);
            self.inner.perfect_subtree(level, index)
        }
    }

    fn test_leaves(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn build(leaves: &[Hash]) -> MemoryTree {
        let mut tree = MemoryTree::new();
        for leaf in leaves {
            tree.append_leaf_hash(*leaf);
        }
        tree
    }

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn basic_hashes() {
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(root(&MemoryTree::new(), 0).unwrap(), empty_root());
        assert_eq!(MemoryTree::new().root(), empty_root());
        assert_eq!(Frontier::empty().root(), empty_root());
    }

    #[test]
    fn hash_from_slice_requires_32_bytes() {
        assert_eq!(hash_from_slice(&[7u8; 32]), Ok([7u8; 32]));
        for len in [0usize, 1, 31, 33, 64] {
            assert_eq!(
                hash_from_slice(&vec![0u8; len]),
                Err(ProofError::BadHashLength { len })
            );
        }
    }

    #[test]
    fn matches_reference_up_to_64() {
        let all = test_leaves(64);
        let tree = build(&all);
        for n in 0..=64usize {
            let size = n as u64;
            let leaves = &all[..n];
            let src = Bounded::new(&tree, size);

            let r = root(&src, size).unwrap();
            assert_eq!(r, ref_mth(leaves), "root at size {n}");
            assert!(src.take_reads() <= u64::from(size.count_ones()));

            for m in 0..n {
                let proof = inclusion_proof(&src, m as u64, size).unwrap();
                assert!(src.take_reads() <= 2 * 41);
                assert_eq!(proof, ref_path(m, leaves), "PATH({m}, {n})");
                verify_inclusion(&leaves[m], m as u64, size, &proof, &r).unwrap();
            }
            assert!(matches!(
                inclusion_proof(&src, size, size),
                Err(TreeError::OutOfRange { .. })
            ));

            for m in 0..=n {
                let proof = consistency_proof(&src, m as u64, size).unwrap();
                assert!(src.take_reads() <= 2 * 41);
                assert_eq!(proof, ref_proof(m, leaves), "PROOF({m}, {n})");
                let old_root = ref_mth(&leaves[..m]);
                let res = verify_consistency(m as u64, size, &old_root, &r, &proof);
                if m == 0 {
                    assert_eq!(res, Err(ProofError::EmptyOldTree));
                } else {
                    res.unwrap_or_else(|e| panic!("PROOF({m}, {n}) rejected: {e}"));
                }
            }
            assert!(matches!(
                consistency_proof(&src, size + 1, size),
                Err(TreeError::SizeDecreased { .. })
            ));

            // Frontier::load reproduces the frontier built by appends.
            let loaded = Frontier::load(&src, size).unwrap();
            assert!(src.take_reads() <= 40);
            let appended = build(leaves).frontier().clone();
            assert_eq!(loaded, appended, "frontier at size {n}");
            assert_eq!(loaded.root(), r);
            assert_eq!(loaded.size(), size);
        }
    }

    #[test]
    fn append_reports_completed_nodes() {
        let leaves = test_leaves(64);
        let mut frontier = Frontier::empty();
        let mut stored = HashMap::new();
        for (i, leaf) in leaves.iter().enumerate() {
            let done = frontier.append(*leaf);
            let i = i as u64;
            // Leaf first, then one node per trailing one bit of the old size.
            assert_eq!(done[0], (0, i, *leaf));
            assert_eq!(done.len() as u32, i.trailing_ones() + 1);
            for (level, index, hash) in done {
                let start = (index << level) as usize;
                let end = ((index + 1) << level) as usize;
                assert_eq!(end as u64, i + 1, "completed node ends at the new size");
                assert_eq!(hash, ref_mth(&leaves[start..end]));
                assert!(stored.insert((level, index), hash).is_none());
            }
            assert_eq!(frontier.root(), ref_mth(&leaves[..=i as usize]));
        }
        // Every perfect subtree of a 64-leaf tree was reported exactly once.
        assert_eq!(stored.len(), 127);
    }

    /// Exhaustive tamper checks on small trees: any changed index, size, root or proof hash
    /// is rejected.
    #[test]
    fn rejects_tampering_small() {
        let all = test_leaves(20);
        let tree = build(&all);
        let roots: Vec<Hash> = (0..=20).map(|n| root(&tree, n).unwrap()).collect();
        for n in 1..=20u64 {
            for m in 0..n {
                let proof = inclusion_proof(&tree, m, n).unwrap();
                let leaf = all[m as usize];
                let root_n = roots[n as usize];
                for m2 in 0..n {
                    if m2 != m {
                        assert!(verify_inclusion(&leaf, m2, n, &proof, &root_n).is_err());
                    }
                }
                for n2 in 1..=20u64 {
                    if n2 != n {
                        // Against the root of the claimed size, a proof for another size fails.
                        assert!(
                            verify_inclusion(&leaf, m, n2, &proof, &roots[n2 as usize]).is_err()
                        );
                        // Against the original root, only when the size changes the proof's
                        // shape: the root does not commit to the size.
                        if m < n2 && inclusion_proof(&tree, m, n2).unwrap().len() != proof.len() {
                            assert!(matches!(
                                verify_inclusion(&leaf, m, n2, &proof, &roots[n as usize]),
                                Err(ProofError::WrongProofLength { .. })
                            ));
                        }
                    }
                }
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i][i % 32] ^= 1 << (i % 8);
                    assert_eq!(
                        verify_inclusion(&leaf, m, n, &bad, &roots[n as usize]),
                        Err(ProofError::RootMismatch)
                    );
                }
                let mut longer = proof.clone();
                longer.push([0; 32]);
                assert!(matches!(
                    verify_inclusion(&leaf, m, n, &longer, &roots[n as usize]),
                    Err(ProofError::WrongProofLength { .. })
                ));
            }
            for m in 1..n {
                let proof = consistency_proof(&tree, m, n).unwrap();
                let (r1, r2) = (roots[m as usize], roots[n as usize]);
                verify_consistency(m, n, &r1, &r2, &proof).unwrap();
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i][31 - i % 32] ^= 0x80;
                    assert!(verify_consistency(m, n, &r1, &r2, &bad).is_err());
                }
                for m2 in 1..=n {
                    if m2 != m {
                        let r = roots[m2 as usize];
                        assert!(verify_consistency(m2, n, &r, &r2, &proof).is_err());
                        assert!(verify_consistency(m2, n, &r1, &r2, &proof).is_err());
                    }
                }
                for n2 in m..=20 {
                    if n2 != n {
                        let r = roots[n2 as usize];
                        assert!(verify_consistency(m, n2, &r1, &r, &proof).is_err());
                        // The root does not commit to the size: with the original new root, a
                        // wrong new size is only caught when it changes the proof's shape.
                        if consistency_proof(&tree, m, n2).unwrap().len() != proof.len() {
                            assert!(matches!(
                                verify_consistency(m, n2, &r1, &r2, &proof),
                                Err(ProofError::WrongProofLength { .. })
                            ));
                        }
                    }
                }
                // A perfect old tree's root is an input to the new root, so a wrong old root
                // shows up as a new-root mismatch there.
                let wrong_old = if m.is_power_of_two() {
                    ProofError::RootMismatch
                } else {
                    ProofError::OldRootMismatch
                };
                assert_eq!(verify_consistency(m, n, &r2, &r2, &proof), Err(wrong_old));
                assert_eq!(
                    verify_consistency(m, n, &r1, &r1, &proof),
                    Err(ProofError::RootMismatch)
                );
            }
        }
    }

    #[test]
    fn verifier_edge_cases() {
        let h = leaf_hash(b"x");
        assert_eq!(
            verify_inclusion(&h, 0, 0, &[], &empty_root()),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(verify_inclusion(&h, 0, 1, &[], &h), Ok(()));
        assert_eq!(
            verify_inclusion(&h, 0, MAX_TREE_SIZE + 1, &[], &h),
            Err(ProofError::TreeTooLarge {
                size: MAX_TREE_SIZE + 1
            })
        );
        assert_eq!(
            verify_consistency(0, 0, &empty_root(), &empty_root(), &[]),
            Err(ProofError::EmptyOldTree)
        );
        assert_eq!(
            verify_consistency(0, 5, &empty_root(), &h, &[]),
            Err(ProofError::EmptyOldTree)
        );
        assert_eq!(
            verify_consistency(2, 1, &h, &h, &[]),
            Err(ProofError::SizeDecreased {
                old_size: 2,
                new_size: 1
            })
        );
        assert_eq!(verify_consistency(3, 3, &h, &h, &[]), Ok(()));
        assert_eq!(
            verify_consistency(3, 3, &h, &h, &[h]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(
            verify_consistency(3, 3, &h, &empty_root(), &[]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(1, 2, &h, &h, &[]),
            Err(ProofError::WrongProofLength {
                expected: 1,
                actual: 0
            })
        );
        let tree = MemoryTree::new();
        assert!(matches!(
            root(&tree, MAX_TREE_SIZE + 1),
            Err(TreeError::TooLarge { .. })
        ));
        assert!(matches!(
            Frontier::load(&tree, MAX_TREE_SIZE + 1),
            Err(TreeError::TooLarge { .. })
        ));
        assert!(matches!(
            consistency_proof(&tree, 1, MAX_TREE_SIZE + 1),
            Err(TreeError::TooLarge { .. })
        ));
        assert!(matches!(
            inclusion_proof(&tree, 0, 0),
            Err(TreeError::OutOfRange { index: 0, size: 0 })
        ));
        assert_eq!(consistency_proof(&tree, 0, 0).unwrap(), Vec::<Hash>::new());
    }

    /// A consistent tree of 2^40 leaves synthesized on demand: leaves at a few chosen indices
    /// are distinct, every other leaf is the same filler, so any perfect subtree without a
    /// chosen leaf has a precomputed hash.
    struct SparseTree {
        special: BTreeSet<u64>,
        filler: Vec<Hash>,
        cache: RefCell<HashMap<(u8, u64), Hash>>,
        reads: Cell<u64>,
        limit: Cell<u64>,
    }

    impl SparseTree {
        fn new(special: BTreeSet<u64>) -> Self {
            let mut filler = vec![leaf_hash(b"filler")];
            for level in 1..=MAX_LEVEL as usize {
                let below = filler[level - 1];
                filler.push(node_hash(&below, &below));
            }
            SparseTree {
                special,
                filler,
                cache: RefCell::new(HashMap::new()),
                reads: Cell::new(0),
                limit: Cell::new(MAX_TREE_SIZE),
            }
        }

        fn leaf(&self, index: u64) -> Hash {
            if self.special.contains(&index) {
                leaf_hash(&index.to_be_bytes())
            } else {
                self.filler[0]
            }
        }

        fn node(&self, level: u8, index: u64) -> Hash {
            let start = index << level;
            let end = (index + 1) << level;
            if self.special.range(start..end).next().is_none() {
                return self.filler[level as usize];
            }
            if level == 0 {
                return self.leaf(index);
            }
            if let Some(h) = self.cache.borrow().get(&(level, index)) {
                return *h;
            }
            let h = node_hash(
                &self.node(level - 1, 2 * index),
                &self.node(level - 1, 2 * index + 1),
            );
            self.cache.borrow_mut().insert((level, index), h);
            h
        }

        fn take_reads(&self) -> u64 {
            self.reads.replace(0)
        }
    }

    impl SubtreeSource for SparseTree {
        type Error = Infallible;
        fn perfect_subtree(&self, level: u8, index: u64) -> Result<Hash, Infallible> {
            assert!(level <= MAX_LEVEL);
            assert!((index + 1) << level <= self.limit.get(), "read past size");
            self.reads.set(self.reads.get() + 1);
            Ok(self.node(level, index))
        }
    }

    #[test]
    fn near_max_size() {
        const MAX_READS: u64 = 2 * 41;
        let size = MAX_TREE_SIZE - 3;
        let half = MAX_TREE_SIZE / 2;
        let mut special = BTreeSet::new();
        special.extend(0..8);
        special.extend(half - 4..half + 4);
        special.extend(MAX_TREE_SIZE - 70..MAX_TREE_SIZE);
        special.extend([
            12_345_678_901,
            987_654_321_012,
            1 << 20,
            (1 << 39) + (1 << 38) + 5,
        ]);
        let tree = SparseTree::new(special);
        tree.limit.set(size);

        let r = root(&tree, size).unwrap();
        assert!(tree.take_reads() <= MAX_READS);

        let indices = [
            0,
            1,
            7,
            half - 1,
            half,
            half + 3,
            1 << 20,
            12_345_678_901,
            987_654_321_012,
            (1 << 39) + (1 << 38) + 5,
            size - 60,
            size - 3,
            size - 2,
            size - 1,
        ];
        for &idx in &indices {
            let proof = inclusion_proof(&tree, idx, size).unwrap();
            let reads = tree.take_reads();
            assert!(reads <= MAX_READS, "inclusion({idx}) took {reads} reads");
            let leaf = tree.leaf(idx);
            verify_inclusion(&leaf, idx, size, &proof, &r).unwrap();
            assert!(verify_inclusion(&leaf, idx ^ 1, size, &proof, &r).is_err());
            assert!(verify_inclusion(
                &leaf,
                idx,
                size - 1,
                &proof,
                &root(&tree, size - 1).unwrap()
            )
            .is_err());
            tree.take_reads();
        }

        let old_sizes = [
            1,
            2,
            8,
            half - 1,
            half,
            half + 1,
            12_345_678_901,
            (1 << 39) + (1 << 38) + 6,
            size - 64,
            size - 2,
            size - 1,
            size,
        ];
        for &old in &old_sizes {
            let old_root = root(&tree, old).unwrap();
            tree.take_reads();
            let proof = consistency_proof(&tree, old, size).unwrap();
            let reads = tree.take_reads();
            assert!(reads <= MAX_READS, "consistency({old}) took {reads} reads");
            verify_consistency(old, size, &old_root, &r, &proof).unwrap();
            if !proof.is_empty() {
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                assert!(verify_consistency(old, size, &old_root, &r, &bad).is_err());
            }
        }

        // The frontier loads in O(log n) and keeps appending up to the maximum size.
        let mut frontier = Frontier::load(&tree, size).unwrap();
        assert!(tree.take_reads() <= 41);
        assert_eq!(frontier.root(), r);
        tree.limit.set(MAX_TREE_SIZE);
        for idx in size..MAX_TREE_SIZE {
            for (level, index, hash) in frontier.append(tree.leaf(idx)) {
                assert_eq!(hash, tree.node(level, index));
            }
        }
        assert_eq!(frontier.size(), MAX_TREE_SIZE);
        assert_eq!(frontier.root(), root(&tree, MAX_TREE_SIZE).unwrap());
        assert_eq!(frontier.root(), tree.node(MAX_LEVEL, 0));
        let full = Frontier::load(&tree, MAX_TREE_SIZE).unwrap();
        assert_eq!(full, frontier);
    }

    #[test]
    #[should_panic(expected = "full")]
    fn append_past_max_panics() {
        let tree = SparseTree::new(BTreeSet::new());
        let mut frontier = Frontier::load(&tree, MAX_TREE_SIZE).unwrap();
        frontier.append(leaf_hash(b"one too many"));
    }
}
