"""The log-wide Merkle tree: RFC 9162 §2.1 (Certificate Transparency) over log positions.

Leaf ``i`` (0-based) is the event at position ``i + 1``; its leaf hash is
``SHA-256(0x00 || the event's 32-byte chain hash)``; an interior node is
``SHA-256(0x01 || left || right)``; the tree of ``n > 1`` leaves splits at the largest power of
two smaller than ``n``; the empty tree's hash is ``SHA-256("")``.

Nothing here holds the whole tree. ``Frontier`` keeps the roots of the perfect subtrees that
make up a tree of any size (one per set bit of the size, largest first: O(log n) hashes), so a
root is computed in one pass over the leaves and a later root goes on from the stored frontier.
``InclusionProof`` builds an audit path (§2.1.3.1) in one pass too: the path is the list of the
roots of O(log n) disjoint ranges of leaves, each folded by its own frontier as the leaves stream
by. ``verify_inclusion`` is §2.1.3.2, word for word.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

#: The root of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def merkle_leaf(chain_hash: str) -> bytes:
    """The leaf hash of an event: SHA-256(0x00 || its 32-byte chain hash, given in hex). (Any hex
    string is accepted: RFC 6962's test vectors hash leaves of other lengths.)"""
    return _sha256(b"\x00" + bytes.fromhex(chain_hash)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of a tree: the roots of its perfect subtrees, largest first.

    ``append`` adds a leaf hash (amortised one node hash per leaf); ``root`` folds the edge into
    the tree's head in O(log n). ``hashes`` with ``size`` is all a later pass needs to go on."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of {size} leaves has {size.bit_count()} subtree roots, not {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> None:
        hashes = self.hashes
        hashes.append(leaf)
        # Each trailing 1 bit of the old size is a perfect subtree of the new leaf's size: merge.
        n = self.size
        while n & 1:
            right = hashes.pop()
            hashes[-1] = _sha256(b"\x01" + hashes[-1] + right).digest()
            n >>= 1
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of the leaves so far: the subtree roots folded right to left."""
        if not self.hashes:
            return EMPTY_ROOT
        it = reversed(self.hashes)
        acc = next(it)
        for left in it:
            acc = _node(left, acc)
        return acc

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """MTH of a sequence of leaf hashes, in one pass."""
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()


def path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[start, end)`` whose roots make the audit path of leaf ``index`` in a
    tree of ``size`` leaves, in path order (the sibling nearest the leaf first). RFC 9162:
    PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) if m < k, else PATH(m - k, D[k:n]) : MTH(D[0:k])."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    lo, hi = 0, size
    top_down: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo += k
    return top_down[::-1]


class InclusionProof:
    """Builds the audit path of leaf ``index`` in a tree of ``size`` leaves from the leaves fed
    in order (``add``), keeping one frontier per path range: O(log n) memory whatever ``size``.
    After ``size`` leaves, ``path`` is the proof and ``leaf`` the leaf hash it proves."""

    def __init__(self, index: int, size: int) -> None:
        self.index = index
        self.size = size
        ranges = path_ranges(index, size)
        self._order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
        self._ranges = [ranges[i] for i in self._order]
        self._frontiers = [Frontier() for _ in ranges]
        self._at = 0  # the next leaf's index
        self._range = 0  # the range (in start order) the next leaf may fall in
        self.leaf: bytes | None = None

    def add(self, leaf: bytes) -> None:
        i = self._at
        if i >= self.size:
            raise ValueError(f"more than {self.size} leaves fed to a proof for a tree of {self.size}")
        self._at = i + 1
        if i == self.index:
            self.leaf = leaf
            return
        while self._ranges[self._range][1] <= i:
            self._range += 1
        self._frontiers[self._range].append(leaf)

    @property
    def seen(self) -> int:
        """How many leaves were fed so far."""
        return self._at

    @property
    def done(self) -> bool:
        return self._at == self.size

    def path(self) -> list[bytes]:
        if not self.done:
            raise ValueError(f"the proof has seen {self._at} of {self.size} leaves")
        roots = [f.root() for f in self._frontiers]
        by_path = [b""] * len(roots)
        for position, original in enumerate(self._order):
            by_path[original] = roots[position]
        return by_path


def inclusion_proof(index: int, size: int, leaves: Iterable[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` of ``leaves``."""
    proof = InclusionProof(index, size)
    for leaf in leaves:
        if proof.done:
            break
        proof.add(leaf)
    return proof.path()


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` in the tree of
    ``size`` leaves whose root is ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
