/**
 * The checkpoint key chain: which Ed25519 key signs a log's checkpoints at
 * which tree sizes, across key rotations.
 *
 * The chain file (`checkpoint-keys.jsonl`, canonical JSON lines) starts
 * with the log's first key, `{"vkey":…}`; its name is the log's origin and
 * never changes. Each rotation adds `{"handover":…}`: a checkpoint of the
 * log at size S in the C2SP signed-note format with one extension line,
 * `ztaas-key-rotation <new vkey>`, signed by the outgoing key and by the
 * incoming one. The outgoing key vouches for its successor, the successor
 * proves it holds its private key, and both commit to the same root at S:
 *
 * - the key that was current before the handover signs checkpoints of size
 *   at most S; its successor signs checkpoints of size at least S;
 * - a handover is itself a valid checkpoint (standard tools verify it with
 *   either key and ignore the extension line).
 *
 * Threat: whoever steals a retired key can sign notes for sizes up to its
 * handover; and since they also control the folder, they can cut the chain
 * back to that key, or write a handover from it to a key of their own,
 * and rewrite the records behind it. What stops them is the anchor: the
 * verifier trusts a key obtained out of band (`trusted`), and the chain
 * must contain it. Records up to the anchor's own handover are pinned by
 * the root the anchor signed there; later keys are reached only through
 * handovers the anchor (or its verified successors) signed. Verification
 * therefore also requires a tree head signed by the anchor or a successor
 * (a checkpoint, or the handover that introduced it): without one, whoever
 * controls the folder could restart the chain at the trusted key and drop
 * every checkpoint. So anchor in the newest key you hold from a trusted
 * source: a key that may have been stolen is no anchor at all (anyone
 * holding it can forge a chain from it).
 *
 * Pure: SHA-256 and Ed25519 verification are passed in.
 */
import { harden } from '../harden.js';
import { ztError } from '../errors.js';
import { openCheckpoint, parseVerifierKey, peekCheckpoint } from './checkpoint.js';
import type { CheckpointBody, Ed25519Verify } from './checkpoint.js';
import type { Sha256 } from './merkle.js';

export const KEY_CHAIN_FILE = 'checkpoint-keys.jsonl';
export const ROTATION_EXTENSION = 'ztaas-key-rotation';

export interface ChainKey {
  vkey: string;
  key: { name: string; publicKey: Uint8Array };
  /** Smallest checkpoint size this key may sign. */
  fromSize: number;
  /** Largest checkpoint size this key may sign; undefined for the current key. */
  toSize?: number;
  /** The handover that introduced this key (absent for the first key). */
  handover?: string;
}

export interface KeyChain {
  /** The log's origin: the first key's name. */
  origin: string;
  /** Index in `keys` of the key trusted out of band, when one was given. */
  anchor?: number;
  /** Oldest first; the last is the current key. */
  keys: ChainKey[];
  /** Each handover's checkpoint body (size and root the rotation pinned). */
  handovers: CheckpointBody[];
}

const corrupt = (message: string, details?: Record<string, unknown>) =>
  ztError('ZT_AUDIT_CORRUPT', message, details);

/**
 * Parses and verifies a chain from its lines (each a parsed JSON object).
 * When `trusted` (a vkey obtained out of band) is given, the chain must
 * contain it. Throws ZT_AUDIT_CORRUPT naming the first bad line.
 */
export const openKeyChain = (
  sha256: Sha256,
  verify: Ed25519Verify,
  lines: readonly unknown[],
  trusted?: string,
): KeyChain => {
  if (lines.length === 0) throw corrupt('the key chain is empty');
  const first = lines[0] as { vkey?: unknown };
  const firstKey = typeof first?.vkey === 'string' ? parseVerifierKey(sha256, first.vkey) : undefined;
  if (!firstKey) throw corrupt('key chain line 0 is not a verifier key', { line: 0 });
  const origin = firstKey.name;
  const keys: ChainKey[] = [{ vkey: first.vkey as string, key: firstKey, fromSize: 0 }];
  const handovers: CheckpointBody[] = [];
  for (let n = 1; n < lines.length; n += 1) {
    const note = (lines[n] as { handover?: unknown })?.handover;
    const peeked = typeof note === 'string' ? peekCheckpoint(note) : undefined;
    const announced = peeked?.extensions.find(e => e.startsWith(`${ROTATION_EXTENSION} `));
    const nextVkey = announced?.slice(ROTATION_EXTENSION.length + 1);
    const nextKey = nextVkey === undefined ? undefined : parseVerifierKey(sha256, nextVkey);
    if (!peeked || !nextKey || nextVkey === undefined) {
      throw corrupt(`key chain line ${n} is not a key handover`, { line: n });
    }
    const previous = keys[keys.length - 1]!;
    const byPrevious = openCheckpoint(sha256, verify, previous.key, note as string);
    const byNext = openCheckpoint(sha256, verify, nextKey, note as string);
    if (!byPrevious || !byNext || peeked.origin !== origin) {
      throw corrupt(`key chain line ${n}: the handover is not signed by both keys for this log`, { line: n });
    }
    if (peeked.size < previous.fromSize) {
      throw corrupt(`key chain line ${n}: the handover goes back in the log`, { line: n });
    }
    if (keys.some(k => k.vkey === nextVkey)) {
      throw corrupt(`key chain line ${n}: the key was used before`, { line: n });
    }
    previous.toSize = peeked.size;
    keys.push({ vkey: nextVkey, key: nextKey, fromSize: peeked.size, handover: note as string });
    handovers.push({ origin: peeked.origin, size: peeked.size, rootHash: peeked.rootHash });
  }
  if (trusted === undefined) return harden({ origin, keys, handovers });
  const anchor = keys.findIndex(k => k.vkey === trusted.trim());
  if (anchor < 0) {
    throw ztError('ZT_AUDIT_LOG_MISSING', 'the key chain does not contain the trusted verifier key: this is not the log that key signed (replaced)');
  }
  return harden({ origin, keys, handovers, anchor });
};
harden(openKeyChain);

/**
 * Verifies a checkpoint note against the chain: signed by a key whose range
 * includes the size it claims, with the log's origin. Undefined otherwise;
 * `signer` is the index in `chain.keys` of the (latest) key that signed it.
 */
export const openChainCheckpoint = (
  sha256: Sha256,
  verify: Ed25519Verify,
  chain: KeyChain,
  note: string,
): (CheckpointBody & { signer: number }) | undefined => {
  const peeked = peekCheckpoint(note);
  if (!peeked || peeked.origin !== chain.origin) return undefined;
  for (let n = chain.keys.length - 1; n >= 0; n -= 1) {
    const k = chain.keys[n]!;
    if (peeked.size < k.fromSize || (k.toSize !== undefined && peeked.size > k.toSize)) continue;
    const body = openCheckpoint(sha256, verify, k.key, note);
    if (body) return { ...body, signer: n };
  }
  return undefined;
};
harden(openChainCheckpoint);
