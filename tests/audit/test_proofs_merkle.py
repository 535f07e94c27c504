"""The log-wide tree is RFC 9162's: the published Certificate Transparency test vectors (RFC 6962's
leaves and roots, inclusion paths), and a direct recursive reference implementation of §2.1 on
every size 0..300, for roots, the streaming audit paths and their verification."""

from __future__ import annotations

import hashlib
import random

import pytest
from turnlog.engine import (
    EMPTY_ROOT,
    Frontier,
    InclusionProof,
    inclusion_proof,
    merkle_leaf,
    merkle_root,
    verify_inclusion,
)

# The eight leaves of the CT test data (certificate-transparency's merkle test vectors).
LEAF_DATA = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (0-based leaf index, tree size, audit path)
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
LEAVES = [merkle_leaf(d) for d in LEAF_DATA]


# -- RFC 9162 §2.1, transcribed as directly as it is written ------------------------------------


def ref_mth(d: list[bytes]) -> bytes:
    """MTH over leaf hashes."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def test_the_published_roots() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0] == merkle_root([]).hex()
    frontier = Frontier()
    for n in range(1, 9):
        frontier.append(LEAVES[n - 1])
        assert frontier.root().hex() == ROOTS[n] == merkle_root(LEAVES[:n]).hex()


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_the_published_inclusion_paths(index: int, size: int, path: list[str]) -> None:
    assert [p.hex() for p in inclusion_proof(index, size, LEAVES)] == path
    root = bytes.fromhex(ROOTS[size])
    proof = [bytes.fromhex(p) for p in path]
    assert verify_inclusion(index, size, LEAVES[index], proof, root)
    assert not verify_inclusion(index, size, LEAVES[index], proof, bytes.fromhex(ROOTS[0]))


def test_every_size_to_300_against_the_reference() -> None:
    rng = random.Random(9162)
    leaves = [hashlib.sha256(rng.randbytes(8)).digest() for _ in range(300)]
    frontier = Frontier()
    for n in range(301):
        assert frontier.root() == ref_mth(leaves[:n]), n
        assert Frontier(n, frontier.hashes).root() == frontier.root()  # a stored frontier goes on
        if n:
            indices = range(n) if n <= 40 else {0, n - 1, *rng.sample(range(n), 6)}
            root = frontier.root()
            for m in indices:
                path = inclusion_proof(m, n, iter(leaves))  # streamed, stops at n
                assert path == ref_path(m, leaves[:n]), (m, n)
                assert verify_inclusion(m, n, leaves[m], path, root)
        if n < 300:
            frontier.append(leaves[n])


def test_a_proof_fails_for_anything_else() -> None:
    rng = random.Random(6962)
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(77)]
    root = merkle_root(leaves)
    for m in rng.sample(range(77), 10):
        path = inclusion_proof(m, 77, leaves)
        assert verify_inclusion(m, 77, leaves[m], path, root)
        other = (m + 1) % 77
        assert not verify_inclusion(other, 77, leaves[m], path, root)  # another index
        # (Another size may verify when the path has the same shape in both trees: the size is
        # bound to the root by the checkpoint's signature, not by the proof.)
        assert not verify_inclusion(m, 77, leaves[other], path, root)  # another leaf
        assert not verify_inclusion(m, 77, leaves[m], path[:-1], root)  # a hash short
        assert not verify_inclusion(m, 77, leaves[m], [*path, path[0]], root)  # a hash too many
        flipped = bytes([path[0][0] ^ 1]) + path[0][1:]
        assert not verify_inclusion(m, 77, leaves[m], [flipped, *path[1:]], root)  # a changed hash
    assert not verify_inclusion(77, 77, leaves[0], [], root) and not verify_inclusion(0, 0, leaves[0], [], EMPTY_ROOT)


def test_the_streaming_proof_keeps_only_logarithmic_state() -> None:
    size = 100_000
    proof = InclusionProof(31_337, size)
    for i in range(size):
        proof.add(i.to_bytes(32, "big"))
    assert proof.done and len(proof.path()) == 17 and len(proof._frontiers) == 17
    assert all(len(f.hashes) <= 17 for f in proof._frontiers)
    with pytest.raises(ValueError, match="more than"):
        proof.add(bytes(32))
    with pytest.raises(ValueError, match="subtree roots"):
        Frontier(5, [bytes(32)])
