/**
 * RFC 6962 / RFC 9162 Merkle tree over SHA-256: leaf and node hashing, an
 * incremental accumulator, inclusion and consistency proofs.
 *
 * Invariant: the root commits to every leaf and to their order; a leaf hash
 * can never be mistaken for a node hash (domain separation by the 0x00 / 0x01
 * prefix, RFC 9162 §2.1.1), so no second-preimage splices a subtree in as a
 * leaf. Verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 exactly and reject
 * anything else: an index outside the tree, a proof one hash too long or too
 * short, hashes that are not 32 bytes.
 *
 * Pure: the SHA-256 function is passed in (`makeMerkleHasher(sha256)`).
 * Tree sizes are JavaScript numbers up to 2^53 - 1, so the index arithmetic
 * uses division rather than the 32-bit bitwise operators.
 */
import { harden } from '../harden.js';

/** SHA-256 over the concatenation of `parts`. */
export type Sha256 = (...parts: Uint8Array[]) => Uint8Array;

export const HASH_SIZE = 32;

export interface MerkleHasher {
  /** SHA-256 of the empty string: the root of the empty tree. */
  readonly emptyRoot: Uint8Array;
  hashLeaf(data: Uint8Array): Uint8Array;
  hashChildren(left: Uint8Array, right: Uint8Array): Uint8Array;
}

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

export const makeMerkleHasher = (sha256: Sha256): MerkleHasher =>
  harden({
    emptyRoot: sha256(),
    hashLeaf: (data: Uint8Array) => sha256(LEAF_PREFIX, data),
    hashChildren: (left: Uint8Array, right: Uint8Array) => sha256(NODE_PREFIX, left, right),
  });
harden(makeMerkleHasher);

// ---------------------------------------------------------------------------
// Small helpers

export const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i]! ^ b[i]!;
  return diff === 0;
};
harden(bytesEqual);

const HEX = '0123456789abcdef';
/** Two hex digits for each byte value: one concatenation per byte. */
const BYTE_HEX: readonly string[] = Array.from({ length: 256 }, (_, b) => HEX[b >> 4]! + HEX[b & 15]!);

export const toHex = (bytes: Uint8Array): string => {
  let out = '';
  for (let i = 0; i < bytes.length; i += 1) out += BYTE_HEX[bytes[i]!]!;
  return out;
};
harden(toHex);

/** Parses lowercase or uppercase hex; returns undefined if malformed. */
export const fromHex = (hex: string): Uint8Array | undefined => {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i += 1) {
    out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
};
harden(fromHex);

const isSafeSize = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

const isOdd = (n: number) => n % 2 === 1;
const half = (n: number) => Math.floor(n / 2);

/** Largest power of two strictly less than n (n >= 2). */
const splitPoint = (n: number): number => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

const isPowerOfTwo = (n: number): boolean => {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
};

// ---------------------------------------------------------------------------
// Accumulator (compact range)

export interface MerkleAccumulator {
  /** Number of leaves appended. */
  size(): number;
  /** Appends one leaf hash (already `hashLeaf`ed). */
  append(leafHash: Uint8Array): void;
  /** The root of the tree of all leaves appended so far. */
  root(): Uint8Array;
  /** The perfect-subtree roots, largest (leftmost) first; a copy. */
  frontier(): Uint8Array[];
}

/**
 * An append-only accumulator holding only the roots of the perfect subtrees
 * that make up the tree: one per set bit of the size, so O(log n) memory and
 * O(log n) work per append or root.
 */
/**
 * Called for each perfect subtree the accumulator completes: its height
 * (1 = two leaves), its index among subtrees of that height (left to right)
 * and its root. Lets a log keep high interior nodes for fast proofs at no
 * extra hashing cost.
 */
export type OnNode = (height: number, index: number, hash: Uint8Array) => void;

export const makeMerkleAccumulator = (hasher: MerkleHasher, onNode?: OnNode): MerkleAccumulator => {
  // stack[i] is the root of a perfect subtree; sizes strictly decrease.
  const stack: Uint8Array[] = [];
  let count = 0;

  return harden({
    size: () => count,
    append: (leafHash: Uint8Array) => {
      let node = leafHash;
      // Each trailing 1 bit of the old size is a subtree of equal height
      // that the new node completes.
      let height = 0;
      let width = 1;
      for (let n = count; isOdd(n); n = half(n)) {
        node = hasher.hashChildren(stack.pop()!, node);
        height += 1;
        width *= 2;
        onNode?.(height, (count + 1) / width - 1, node);
      }
      stack.push(node);
      count += 1;
    },
    root: () => {
      if (stack.length === 0) return hasher.emptyRoot;
      let node = stack[stack.length - 1]!;
      for (let i = stack.length - 2; i >= 0; i -= 1) {
        node = hasher.hashChildren(stack[i]!, node);
      }
      return node;
    },
    frontier: () => stack.slice(),
  });
};
harden(makeMerkleAccumulator);

// ---------------------------------------------------------------------------
// Trees over a list of leaf hashes

/** Reads leaf hash `index` of a tree; the leaves are already `hashLeaf`ed. */
export type LeafAt = (index: number) => Uint8Array;

/**
 * A cache of interior nodes: the root of the perfect subtree D[lo:hi], or
 * undefined if not cached. Only ever asked for aligned power-of-two ranges.
 */
export type NodeAt = (lo: number, hi: number) => Uint8Array | undefined;

/** MTH(D[lo:hi]) of RFC 9162 §2.1.1, over leaf hashes. */
const subtreeRoot = (hasher: MerkleHasher, leafAt: LeafAt, lo: number, hi: number, nodeAt?: NodeAt): Uint8Array => {
  const n = hi - lo;
  if (n === 0) return hasher.emptyRoot;
  if (n === 1) return leafAt(lo);
  if (nodeAt && isPowerOfTwo(n) && lo % n === 0) {
    const cached = nodeAt(lo, hi);
    if (cached) return cached;
  }
  const k = splitPoint(n);
  return hasher.hashChildren(
    subtreeRoot(hasher, leafAt, lo, lo + k, nodeAt),
    subtreeRoot(hasher, leafAt, lo + k, hi, nodeAt),
  );
};

/** The root of the tree whose leaf hashes are `leafHashes`. */
export const merkleRoot = (hasher: MerkleHasher, leafHashes: readonly Uint8Array[]): Uint8Array =>
  subtreeRoot(hasher, i => leafHashes[i]!, 0, leafHashes.length);
harden(merkleRoot);

/** The root of the first `treeSize` leaves read through `leafAt`. */
export const merkleRootAt = (hasher: MerkleHasher, leafAt: LeafAt, treeSize: number, nodeAt?: NodeAt): Uint8Array =>
  subtreeRoot(hasher, leafAt, 0, treeSize, nodeAt);
harden(merkleRootAt);

const checkProofArgs = (ok: boolean, message: string): void => {
  if (!ok) throw RangeError(message);
};

/**
 * PATH(index, D[0:treeSize]) of RFC 9162 §2.1.3.1: the audit path for leaf
 * `index`, bottom-up. Throws RangeError unless 0 <= index < treeSize.
 */
export const inclusionProof = (
  hasher: MerkleHasher,
  leafAt: LeafAt,
  index: number,
  treeSize: number,
  nodeAt?: NodeAt,
): Uint8Array[] => {
  checkProofArgs(
    isSafeSize(index) && isSafeSize(treeSize) && index < treeSize,
    `inclusion proof needs 0 <= index < treeSize, got ${index}, ${treeSize}`,
  );
  const path: Uint8Array[] = [];
  const walk = (m: number, lo: number, hi: number): void => {
    const n = hi - lo;
    if (n <= 1) return;
    const k = splitPoint(n);
    if (m < k) {
      walk(m, lo, lo + k);
      path.push(subtreeRoot(hasher, leafAt, lo + k, hi, nodeAt));
    } else {
      walk(m - k, lo + k, hi);
      path.push(subtreeRoot(hasher, leafAt, lo, lo + k, nodeAt));
    }
  };
  walk(index, 0, treeSize);
  return path;
};
harden(inclusionProof);

/**
 * PROOF(size1, D[0:size2]) of RFC 9162 §2.1.4.1. Throws RangeError unless
 * 0 < size1 <= size2; the proof for size1 === size2 is empty.
 */
export const consistencyProof = (
  hasher: MerkleHasher,
  leafAt: LeafAt,
  size1: number,
  size2: number,
  nodeAt?: NodeAt,
): Uint8Array[] => {
  checkProofArgs(
    isSafeSize(size1) && isSafeSize(size2) && size1 > 0 && size1 <= size2,
    `consistency proof needs 0 < size1 <= size2, got ${size1}, ${size2}`,
  );
  const proof: Uint8Array[] = [];
  // SUBPROOF(m, D[lo:hi], whole): `whole` says D[lo:lo+m] is the old tree
  // itself, whose root the verifier already has.
  const sub = (m: number, lo: number, hi: number, whole: boolean): void => {
    const n = hi - lo;
    if (m === n) {
      if (!whole) proof.push(subtreeRoot(hasher, leafAt, lo, hi, nodeAt));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, lo, lo + k, whole);
      proof.push(subtreeRoot(hasher, leafAt, lo + k, hi, nodeAt));
    } else {
      sub(m - k, lo + k, hi, false);
      proof.push(subtreeRoot(hasher, leafAt, lo, lo + k, nodeAt));
    }
  };
  sub(size1, 0, size2, true);
  return proof;
};
harden(consistencyProof);

// ---------------------------------------------------------------------------
// Verification. Each returns a boolean; `assert*` wrappers live with callers
// that know which error code applies.

const allHashes = (hashes: readonly Uint8Array[]): boolean =>
  hashes.every(h => h instanceof Uint8Array && h.length === HASH_SIZE);

/** RFC 9162 §2.1.3.2: does `proof` show `leafHash` at `index` under `root`? */
export const verifyInclusion = (
  hasher: MerkleHasher,
  index: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean => {
  if (!isSafeSize(index) || !isSafeSize(treeSize) || index >= treeSize) return false;
  if (!allHashes([leafHash, root, ...proof])) return false;
  let fn = index;
  let sn = treeSize - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = hasher.hashChildren(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = hasher.hashChildren(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && bytesEqual(r, root);
};
harden(verifyInclusion);

/**
 * RFC 9162 §2.1.4.2: does `proof` show the tree of `size2` leaves with
 * `root2` extends the tree of `size1` leaves with `root1`? A proof from the
 * empty tree is refused (it proves nothing); equal sizes need an empty proof
 * and byte-equal roots.
 */
export const verifyConsistency = (
  hasher: MerkleHasher,
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: readonly Uint8Array[],
): boolean => {
  if (!isSafeSize(size1) || !isSafeSize(size2)) return false;
  if (size1 === 0 || size1 > size2) return false;
  if (size1 === size2) return proof.length === 0 && bytesEqual(root1, root2);
  if (proof.length === 0) return false;
  if (!allHashes([root1, root2, ...proof])) return false;

  const path = isPowerOfTwo(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = hasher.hashChildren(c, fr);
      sr = hasher.hashChildren(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = hasher.hashChildren(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && bytesEqual(fr, root1) && bytesEqual(sr, root2);
};
harden(verifyConsistency);
