//! The RFC 6962 (RFC 9162 §2.1) Merkle tree: hashes, an append-only compact tree, and
//! inclusion and consistency proofs.
//!
//! Leaves and interior nodes are hashed with distinct prefixes (`0x00` and `0x01`), so a
//! leaf can never be passed off as a node. The root of the empty tree is SHA-256 of no
//! bytes.

use sha2::{Digest, Sha256};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// Root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The Merkle tree hash (MTH) of a list of leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// An append-only tree that keeps only the roots of its perfect subtrees (the "frontier",
/// one hash per set bit of the size, largest subtree first): enough to append and to
/// compute the root in O(log n).
///
/// Invariant: `frontier.len() == size.count_ones()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactTree {
    size: u64,
    frontier: Vec<Hash>,
}

impl CompactTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuild from a size and its frontier; `None` when they do not fit together.
    pub fn from_parts(size: u64, frontier: Vec<Hash>) -> Option<Self> {
        (frontier.len() == size.count_ones() as usize).then_some(Self { size, frontier })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Roots of the perfect subtrees, largest first.
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// Append one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut n = self.size;
        while n & 1 == 1 {
            match self.frontier.pop() {
                Some(left) => h = node_hash(&left, &h),
                // Unreachable by the invariant; keeping the hash is the least bad outcome.
                None => break,
            }
            n >>= 1;
        }
        self.frontier.push(h);
        self.size += 1;
    }

    /// The tree's root hash.
    pub fn root(&self) -> Hash {
        let mut it = self.frontier.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(last) => it.fold(*last, |acc, h| node_hash(h, &acc)),
        }
    }
}

/// Inclusion proof (audit path) of leaf `index` in the tree of all `leaves`
/// (RFC 9162 §2.1.3.1); `None` when `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Option<Vec<Hash>> {
    if index >= leaves.len() as u64 {
        return None;
    }
    let mut path = Vec::new();
    path_rec(index as usize, leaves, &mut path);
    Some(path)
}

fn path_rec(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    let n = d.len();
    if n <= 1 {
        return;
    }
    let k = split(n as u64) as usize;
    if m < k {
        path_rec(m, &d[..k], out);
        out.push(root(&d[k..]));
    } else {
        path_rec(m - k, &d[k..], out);
        out.push(root(&d[..k]));
    }
}

/// Check that `leaf` is leaf `index` of the tree of `size` leaves with root `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Consistency proof between the first `old_size` leaves and all `leaves`
/// (RFC 9162 §2.1.4.1); `None` when `old_size` exceeds the tree. Empty when
/// `old_size` is 0 or equals the tree size.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Option<Vec<Hash>> {
    let n = leaves.len() as u64;
    if old_size > n {
        return None;
    }
    let mut out = Vec::new();
    if old_size > 0 && old_size < n {
        subproof(old_size as usize, leaves, true, &mut out);
    }
    Some(out)
}

fn subproof(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !complete {
            out.push(root(d));
        }
        return;
    }
    let k = split(n as u64) as usize;
    if m <= k {
        subproof(m, &d[..k], complete, out);
        out.push(root(&d[k..]));
    } else {
        subproof(m - k, &d[k..], false, out);
        out.push(root(&d[..k]));
    }
}

/// Check that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        // Everything extends the empty tree; there is nothing to prove.
        return proof.is_empty() && *old_root == empty_root();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hash {
        let v = hex::decode(s).unwrap();
        v.try_into().unwrap()
    }

    /// The Certificate Transparency reference leaves and the roots of their prefixes.
    fn ct_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|x| leaf_hash(&hex::decode(x).unwrap()))
        .collect()
    }

    const CT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn reference_roots() {
        let leaves = ct_leaves();
        let mut tree = CompactTree::new();
        assert_eq!(tree.root(), h(CT_ROOTS[0]));
        for n in 1..=8 {
            assert_eq!(root(&leaves[..n]), h(CT_ROOTS[n]), "size {n}");
            tree.push(leaves[n - 1]);
            assert_eq!(tree.root(), h(CT_ROOTS[n]), "compact size {n}");
        }
    }

    #[test]
    fn reference_proofs() {
        let leaves = ct_leaves();
        let p = inclusion_proof(&leaves, 0).unwrap();
        let want = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        assert_eq!(p, want.map(h).to_vec());
        let p = inclusion_proof(&leaves, 5).unwrap();
        let want = [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ];
        assert_eq!(p, want.map(h).to_vec());
        let c = consistency_proof(&leaves, 2).unwrap();
        let want = [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        assert_eq!(c, want.map(h).to_vec());
        let c = consistency_proof(&leaves, 6).unwrap();
        let want = [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ];
        assert_eq!(c, want.map(h).to_vec());
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn every_inclusion_proof_verifies_and_mangled_ones_fail() {
        let all = leaves(70);
        for n in 1..=all.len() {
            let r = root(&all[..n]);
            for i in 0..n {
                let p = inclusion_proof(&all[..n], i as u64).unwrap();
                assert!(verify_inclusion(&all[i], i as u64, n as u64, &p, &r));
                assert!(!verify_inclusion(&all[i], n as u64, n as u64, &p, &r));
                if n > 1 {
                    let other = (i + 1) % n;
                    assert!(!verify_inclusion(&all[other], i as u64, n as u64, &p, &r));
                }
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(&all[i], i as u64, n as u64, &bad, &r));
                    assert!(!verify_inclusion(
                        &all[i],
                        i as u64,
                        n as u64,
                        &p[..p.len() - 1],
                        &r
                    ));
                }
                let mut longer = p.clone();
                longer.push([0xab; 32]);
                assert!(!verify_inclusion(&all[i], i as u64, n as u64, &longer, &r));
            }
            assert!(inclusion_proof(&all[..n], n as u64).is_none());
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_mangled_ones_fail() {
        let all = leaves(70);
        let roots: Vec<Hash> = (0..=all.len()).map(|n| root(&all[..n])).collect();
        for n in 0..=all.len() {
            for m in 0..=n {
                let p = consistency_proof(&all[..n], m as u64).unwrap();
                let (m64, n64) = (m as u64, n as u64);
                assert!(
                    verify_consistency(m64, n64, &roots[m], &roots[n], &p),
                    "{m} -> {n}"
                );
                if m > 0 && m < n {
                    let mut bad = p.clone();
                    bad[0][3] ^= 0x80;
                    assert!(!verify_consistency(m64, n64, &roots[m], &roots[n], &bad));
                    assert!(!verify_consistency(
                        m64,
                        n64,
                        &roots[m],
                        &roots[n],
                        &p[..p.len() - 1]
                    ));
                    let mut longer = p.clone();
                    longer.push([0xcd; 32]);
                    assert!(!verify_consistency(m64, n64, &roots[m], &roots[n], &longer));
                    // A different old tree of the same size does not fit.
                    let mut other = all[..m].to_vec();
                    other[m - 1][0] ^= 1;
                    assert!(!verify_consistency(m64, n64, &root(&other), &roots[n], &p));
                }
            }
        }
        assert!(!verify_consistency(5, 3, &roots[5], &roots[3], &[]));
        assert!(!verify_consistency(4, 4, &roots[4], &roots[5], &[]));
    }

    #[test]
    fn compact_tree_matches_full_root_and_round_trips() {
        let all = leaves(130);
        let mut t = CompactTree::new();
        for (i, l) in all.iter().enumerate() {
            t.push(*l);
            assert_eq!(t.root(), root(&all[..=i]));
            let again = CompactTree::from_parts(t.size(), t.frontier().to_vec()).unwrap();
            assert_eq!(again, t);
        }
        assert!(CompactTree::from_parts(3, vec![[0; 32]]).is_none());
    }
}
