/**
 * Loads the RFC 6962 / 9162 vectors from `test/fixtures/rfc6962/` (a
 * verbatim copy, with its source and licence in `SOURCE.md`), so that a
 * clone on its own runs them. No silent skips: a missing folder or a file of
 * an unrecognised shape throws, failing the test that asked for it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, relative } from 'node:path';

// dist/test/_audit-vectors.js -> <repo>/test/fixtures/rfc6962/
export const VECTORS_DIR = fileURLToPath(new URL('../../test/fixtures/rfc6962/', import.meta.url));

const b64 = (s: unknown, where: string): Uint8Array => {
  if (typeof s !== 'string') throw TypeError(`${where}: expected a base64 string`);
  return new Uint8Array(Buffer.from(s, 'base64'));
};

const proofOf = (p: unknown, where: string): Uint8Array[] => {
  if (p === null) return [];
  if (!Array.isArray(p)) throw TypeError(`${where}: proof is neither null nor an array`);
  return p.map((h, i) => b64(h, `${where}: proof[${i}]`));
};

// Sizes are uint64 in the vectors; 2^64 - 1 parses to an unsafe number that
// the verifier must refuse, so unsafe integers are kept rather than rejected.
const int = (n: unknown, where: string): number => {
  if (!Number.isInteger(n) || (n as number) < 0) throw TypeError(`${where}: expected a uint64`);
  return n as number;
};

const bool = (b: unknown, where: string): boolean => {
  if (typeof b !== 'boolean') throw TypeError(`${where}: expected a boolean`);
  return b;
};

export interface InclusionVector {
  file: string;
  desc: string;
  leafIdx: number;
  treeSize: number;
  root: Uint8Array;
  leafHash: Uint8Array;
  proof: Uint8Array[];
  wantErr: boolean;
}

export interface ConsistencyVector {
  file: string;
  desc: string;
  size1: number;
  size2: number;
  root1: Uint8Array;
  root2: Uint8Array;
  proof: Uint8Array[];
  wantErr: boolean;
}

export interface TreeHeads {
  leaves: Uint8Array[];
  roots: Array<{ size: number; root: Uint8Array }>;
}

const listJsonFiles = (dir: string): string[] => {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.json')) out.push(p);
      else throw Error(`unrecognised vector file ${relative(VECTORS_DIR, p)}`);
    }
  };
  walk(dir);
  return out;
};

const keysOf = (o: object) => Object.keys(o).sort().join(',');
const INCLUSION_KEYS = 'desc,leafHash,leafIdx,proof,root,treeSize,wantErr';
const CONSISTENCY_KEYS = 'desc,proof,root1,root2,size1,size2,wantErr';

export const loadVectors = (): {
  inclusion: InclusionVector[];
  consistency: ConsistencyVector[];
  treeHeads: TreeHeads;
  /** Every file in the folder, so a test can check each was classified. */
  allFiles: string[];
} => {
  const top = readdirSync(VECTORS_DIR).sort();
  const expected = ['README.md', 'SOURCE.md', 'consistency', 'inclusion', 'tree-heads.json'];
  if (top.join(',') !== expected.join(',')) {
    throw Error(`unexpected vector folder layout: ${top.join(', ')}`);
  }
  const inclusion: InclusionVector[] = [];
  for (const path of listJsonFiles(join(VECTORS_DIR, 'inclusion'))) {
    const file = relative(VECTORS_DIR, path);
    const o = JSON.parse(readFileSync(path, 'utf8'));
    if (keysOf(o) !== INCLUSION_KEYS) throw Error(`${file}: not an inclusion vector`);
    inclusion.push({
      file,
      desc: String(o.desc),
      leafIdx: int(o.leafIdx, file),
      treeSize: int(o.treeSize, file),
      root: b64(o.root, file),
      leafHash: b64(o.leafHash, file),
      proof: proofOf(o.proof, file),
      wantErr: bool(o.wantErr, file),
    });
  }
  const consistency: ConsistencyVector[] = [];
  for (const path of listJsonFiles(join(VECTORS_DIR, 'consistency'))) {
    const file = relative(VECTORS_DIR, path);
    const o = JSON.parse(readFileSync(path, 'utf8'));
    if (keysOf(o) !== CONSISTENCY_KEYS) throw Error(`${file}: not a consistency vector`);
    consistency.push({
      file,
      desc: String(o.desc),
      size1: int(o.size1, file),
      size2: int(o.size2, file),
      root1: b64(o.root1, file),
      root2: b64(o.root2, file),
      proof: proofOf(o.proof, file),
      wantErr: bool(o.wantErr, file),
    });
  }
  const th = JSON.parse(readFileSync(join(VECTORS_DIR, 'tree-heads.json'), 'utf8'));
  if (!Array.isArray(th.leaves) || !Array.isArray(th.roots)) {
    throw Error('tree-heads.json: expected leaves and roots arrays');
  }
  const treeHeads: TreeHeads = {
    leaves: th.leaves.map((h: unknown) => new Uint8Array(Buffer.from(String(h), 'hex'))),
    roots: th.roots.map((r: { size: unknown; root: unknown }) => ({
      size: int(r.size, 'tree-heads.json'),
      root: new Uint8Array(Buffer.from(String(r.root), 'hex')),
    })),
  };
  const allFiles = [
    'README.md',
    'SOURCE.md',
    'tree-heads.json',
    ...inclusion.map(v => v.file),
    ...consistency.map(v => v.file),
  ];
  return { inclusion, consistency, treeHeads, allFiles };
};

/** Counts every regular file under the vector folder, classified or not. */
export const countFiles = (): number => {
  let n = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else n += 1;
    }
  };
  walk(VECTORS_DIR);
  return n;
};
