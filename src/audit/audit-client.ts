/**
 * Kernel side of the audit log: starts the audit vat and adapts it (or an
 * in-process log) to the `AuditSink` the kernel awaits before every action.
 *
 * Invariant (fail closed): `append` resolves only with the vat's durable
 * confirmation. A timeout, a crashed or exited vat, a store error or a
 * closed sink rejects with ZT_AUDIT_UNAVAILABLE; never "recorded" without
 * the record. Once the vat is gone (crash, exit, timeout) every later append
 * rejects too: a timed-out batch may or may not have landed, so the vat
 * is terminated rather than trusted to resume with a hole in the history.
 *
 * The audit vat is a process of its own (audit-vat-node-powers.ts): the
 * signing key and the store's descriptors share no address space and no
 * descriptor table with any agent vat.
 *
 * A slow append is not a dead vat: appends are bounded by `appendStallMs`
 * (by default the larger of a minute and ten times `timeoutMs`), not by
 * `timeoutMs`. The kernel's recorder denies requests as soon as its own
 * `auditTimeoutMs` passes, and resumes by itself if the append then lands
 * (kernel/audit-recorder.ts); only an append stalled past `appendStallMs`
 * ends the vat.
 *
 * Records are validated and copied (via canonical JSON) when `append` is
 * called, so a caller cannot change a record after handing it over, and one
 * caller's malformed record (ZT_AUDIT_NOT_CANONICAL, ZT_BAD_ARGUMENT) fails
 * only its own append. All records appended in one turn go to the vat in
 * one message, and so into one group commit.
 */
import { harden } from '../harden.js';
import { makeCapTP, E } from '@endo/captp';
import { codeOf, isErrorCode, ztError, ZtError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import { canonicalJson } from './canonical.js';
import { RESERVED_KEYS } from './audit-log.js';
import type { AuditBatchRef, AuditLog, AuditRef } from './audit-log.js';
import { AUDIT_APPEND, AUDIT_APPENDED, AUDIT_OPEN_FAILED } from './audit-vat-protocol.js';
import type { AuditCheckpoint, AuditKeyRotation, AuditVatRoot } from './audit-vat-protocol.js';
import type { Durability } from './file-store.js';
import { startAuditProcess, type AuditConnection, type AuditProcessOptions } from './audit-vat-node-powers.js';

export type { AuditRef } from './audit-log.js';

export interface AuditSink {
  /** Resolves once the record is durable; rejects with ZT_AUDIT_UNAVAILABLE if it cannot be. */
  append(record: Record<string, unknown>): Promise<AuditRef>;
  read(fromSeq: number, count: number): Promise<Array<Record<string, unknown>>>;
  size(): Promise<number>;
  rootHash(): Promise<string>;
  close(): Promise<void>;
}

/** The vat-backed sink also offers proofs, checkpoints and a readiness probe. */
export interface AuditVatSink extends AuditSink {
  /** Resolves once the vat has opened its store; rejects with its code (e.g. ZT_AUDIT_CORRUPT). */
  ready(): Promise<void>;
  inclusionProof(index: number, treeSize: number): Promise<string[]>;
  consistencyProof(size1: number, size2: number): Promise<string[]>;
  checkpoint(): Promise<AuditCheckpoint>;
  /** Rotates the checkpoint signing key (see `vat-audit`); the rotation is recorded in the log. */
  rotateKey(): Promise<AuditKeyRotation>;
}

export interface StartAuditVatOptions {
  dir: string;
  durability?: Durability;
  /** Bound on every call to the vat except appends, in milliseconds. */
  timeoutMs?: number;
  /**
   * Bound on an append, past which the vat is taken for stuck and ended;
   * defaults to the larger of 60 s and 10 × `timeoutMs`.
   */
  appendStallMs?: number;
  /** How often the vat signs a checkpoint of new records (also on close); 0 disables the timer. */
  checkpointIntervalMs?: number;
  /** The vat's heap limit (V8 old generation), MiB. Default 512. */
  maxOldGenerationSizeMb?: number;
  /** Starts the vat's process (default `startAuditProcess`); tests hold on to it. */
  startVat?: (options: AuditProcessOptions) => AuditConnection;
}

export const DEFAULT_AUDIT_TIMEOUT_MS = 5_000;
const DEFAULT_HEAP_MB = 512;
const MIN_APPEND_STALL_MS = 60_000;

const unavailable = (message: string, cause?: unknown): ZtError =>
  ztError(
    'ZT_AUDIT_UNAVAILABLE',
    message,
    cause === undefined ? undefined : { cause: cause instanceof Error ? cause.message : String(cause) },
  );

/**
 * Checks one record and returns its canonical JSON text: the copy that is
 * sent to the log (a string cannot change after the call). Throws
 * ZT_BAD_ARGUMENT or ZT_AUDIT_NOT_CANONICAL, as the log would for the batch.
 */
export const prepareRecordText = (record: unknown): string => {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw ztError('ZT_BAD_ARGUMENT', 'an audit record must be a plain object');
  }
  const proto = Object.getPrototypeOf(record);
  if (proto !== Object.prototype && proto !== null) {
    throw ztError('ZT_BAD_ARGUMENT', 'an audit record must be a plain object');
  }
  for (const key of RESERVED_KEYS) {
    if (Object.hasOwn(record, key)) {
      throw ztError('ZT_BAD_ARGUMENT', `an audit record may not set the reserved key ${key}`);
    }
  }
  return canonicalJson(record);
};
harden(prepareRecordText);

interface Pending {
  text: string;
  resolve: (ref: AuditRef) => void;
  reject: (err: unknown) => void;
}

const LEAF_HEX = /^[0-9a-f]*$/;

/**
 * Microtask batching: every `append` of one turn joins one `sendBatch` call.
 * `sendBatch` must resolve with the first seq and 64 hex digits per record.
 */
const makeBatchingAppender = (
  sendBatch: (texts: string[]) => Promise<AuditBatchRef>,
  check: () => void,
) => {
  let pending: Pending[] = [];
  const inFlight = new Set<Promise<void>>();

  const flush = (): void => {
    const batch = pending;
    pending = [];
    const done = (async () => {
      try {
        const texts = new Array<string>(batch.length);
        for (let i = 0; i < batch.length; i += 1) texts[i] = batch[i]!.text;
        const ref = await sendBatch(texts);
        const first = ref?.first;
        const hashes = ref?.leafHashes;
        if (
          !Number.isSafeInteger(first) ||
          (first as number) < 0 ||
          typeof hashes !== 'string' ||
          hashes.length !== 64 * batch.length ||
          !LEAF_HEX.test(hashes)
        ) {
          throw unavailable('the audit vat returned a malformed confirmation');
        }
        for (let i = 0; i < batch.length; i += 1) {
          batch[i]!.resolve(
            Object.freeze({ seq: (first as number) + i, leafHash: hashes.slice(64 * i, 64 * i + 64) }),
          );
        }
      } catch (err) {
        const error =
          err instanceof ZtError && err.code === 'ZT_AUDIT_UNAVAILABLE'
            ? err
            : unavailable('the audit log did not record the batch', err);
        for (const p of batch) p.reject(error);
      }
    })();
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  };

  const append = (record: Record<string, unknown>): Promise<AuditRef> => {
    try {
      check();
      const text = prepareRecordText(record);
      return new Promise<AuditRef>((resolve, reject) => {
        pending.push({ text, resolve, reject });
        if (pending.length === 1) queueMicrotask(flush);
      });
    } catch (err) {
      return Promise.reject(err);
    }
  };

  /** Resolves when every batch sent so far has settled. */
  const drain = async (): Promise<void> => {
    await Promise.resolve(); // let a queued flush start
    while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
  };

  return { append, drain };
};

/** Adapts an in-process `makeAuditLog` instance to `AuditSink` (tests, loopback). */
export const makeInProcessAuditSink = (log: AuditLog): AuditSink => {
  let closed: Promise<void> | undefined;
  const { append, drain } = makeBatchingAppender(
    texts => log.appendJoined(texts.join('\n')),
    () => {
      if (closed) throw unavailable('the audit sink is closed');
    },
  );
  return harden({
    append,
    read: async (fromSeq: number, count: number) => log.read(fromSeq, count),
    size: async () => log.size(),
    rootHash: async () => log.rootHash(),
    close: () =>
      (closed ??= (async () => {
        await drain();
        await log.close();
      })()),
  });
};
harden(makeInProcessAuditSink);

/**
 * Starts the audit vat in its own process and returns its sink at once; the
 * vat opens its store meanwhile (see `ready()`), and calls made before it is
 * ready wait for it within `timeoutMs`.
 */
export const startAuditVat = (options: StartAuditVatOptions): AuditVatSink => {
  const {
    dir,
    durability = 'durable',
    timeoutMs = DEFAULT_AUDIT_TIMEOUT_MS,
    checkpointIntervalMs = 60_000,
    maxOldGenerationSizeMb = DEFAULT_HEAP_MB,
    startVat = startAuditProcess,
  } = options ?? ({} as StartAuditVatOptions);
  if (typeof dir !== 'string' || dir === '') throw ztError('ZT_BAD_ARGUMENT', 'the audit vat needs a folder');
  if (durability !== 'durable' && durability !== 'relaxed') {
    throw ztError('ZT_BAD_ARGUMENT', 'durability must be "durable" or "relaxed"');
  }
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw ztError('ZT_BAD_ARGUMENT', 'timeoutMs must be a positive integer');
  }
  if (!Number.isSafeInteger(checkpointIntervalMs) || checkpointIntervalMs < 0) {
    throw ztError('ZT_BAD_ARGUMENT', 'checkpointIntervalMs must be a non-negative integer');
  }
  if (!Number.isSafeInteger(maxOldGenerationSizeMb) || maxOldGenerationSizeMb < 16) {
    throw ztError('ZT_BAD_ARGUMENT', 'maxOldGenerationSizeMb must be an integer of at least 16');
  }
  const appendStallMs = options.appendStallMs ?? Math.max(MIN_APPEND_STALL_MS, 10 * timeoutMs);
  if (!Number.isSafeInteger(appendStallMs) || appendStallMs <= 0) {
    throw ztError('ZT_BAD_ARGUMENT', 'appendStallMs must be a positive integer');
  }

  // One wire, in order: CapTP for everything but appends, which bypass its
  // dispatch (the hot path: one frame in, one frame out).
  const vatLink = startVat({ dir, durability, checkpointIntervalMs, maxOldGenerationSizeMb });

  // Set once; from then on every call is refused with it.
  let dead: ZtError | undefined;
  // The code the vat gave for failing to open, for `ready()`.
  let openFailure: { code: ErrorCode; message: string } | undefined;
  let closing: Promise<void> | undefined;
  const deathWatchers = new Set<(err: ZtError) => void>();

  // Raw appends awaiting the vat's answer, by id.
  const rawPending = new Map<number, { resolve: (ref: AuditBatchRef) => void; reject: (err: unknown) => void }>();
  let nextAppendId = 0;

  const die = (err: ZtError): void => {
    if (dead) return;
    dead = err;
    for (const waiter of rawPending.values()) waiter.reject(err);
    rawPending.clear();
    captp.abort(err);
    for (const watcher of deathWatchers) watcher(err);
    deathWatchers.clear();
    void vatLink.terminate().catch(() => {});
  };

  const captp = makeCapTP(
    'kernel-audit',
    message => {
      try {
        vatLink.send(message as Record<string, unknown>);
      } catch (err) {
        die(unavailable('cannot reach the audit vat', err));
      }
    },
    undefined,
    { onReject: () => undefined },
  );

  const onAppendMessage = (message: Record<string, unknown>): void => {
    const m = message as { type?: unknown; code?: unknown; reason?: unknown };
    if (m && m.type === AUDIT_APPENDED) {
      const reply = m as { id?: unknown; first?: unknown; leafHashes?: unknown; code?: unknown; reason?: unknown };
      const waiter = rawPending.get(reply.id as number);
      if (!waiter) return;
      rawPending.delete(reply.id as number);
      if (reply.code === undefined) {
        waiter.resolve({ first: reply.first as number, leafHashes: reply.leafHashes as string });
      } else {
        // The batch failed in the vat: its own code (e.g. ZT_BAD_ARGUMENT), or unavailable.
        const code = isErrorCode(reply.code) ? reply.code : 'ZT_AUDIT_UNAVAILABLE';
        waiter.reject(ztError(code, String(reply.reason)));
      }
      return;
    }
    if (m && m.type === AUDIT_OPEN_FAILED) {
      const code = isErrorCode(m.code) ? m.code : 'ZT_AUDIT_UNAVAILABLE';
      const text = String(m.reason);
      openFailure = { code, message: text };
      die(unavailable(`the audit vat could not open its store (${code})`, text));
    }
  };
  vatLink.on('message', message => {
    if (dead) return;
    if (message.type === AUDIT_APPENDED || message.type === AUDIT_OPEN_FAILED) onAppendMessage(message);
    else if (message.type !== AUDIT_APPEND) captp.dispatch(message);
  });
  vatLink.on('exit', reason => die(unavailable(reason)));
  // The idle audit vat never keeps the process alive: every call in flight
  // holds a timer (see `call`), so the process cannot exit while a record
  // is on its way to the store.
  vatLink.unref();

  const vat = captp.getBootstrap() as Promise<AuditVatRoot>;
  // Avoid an unhandled rejection when the vat dies before anyone asks.
  vat.catch(() => {});

  /**
   * Calls the vat, bounded by `timeoutMs`; a timeout kills the vat. Errors
   * from the vat keep their ZT_ code; loss of the vat is ZT_AUDIT_UNAVAILABLE.
   */
  const call = <T>(send: (v: Promise<AuditVatRoot>) => Promise<T>, what: string, boundMs = timeoutMs): Promise<T> => {
    if (dead) return Promise.reject(dead);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = () => {
        settled = true;
        clearTimeout(timer);
        deathWatchers.delete(onDeath);
      };
      const onDeath = (err: ZtError) => {
        if (settled) return;
        finish();
        reject(err);
      };
      const timer = setTimeout(() => {
        if (settled) return;
        const err = unavailable(`the audit vat did not answer ${what} within ${boundMs} ms`);
        finish();
        reject(err);
        die(err);
      }, boundMs);
      deathWatchers.add(onDeath);
      send(vat).then(
        value => {
          if (settled) return;
          finish();
          resolve(value);
        },
        (err: unknown) => {
          if (settled) return;
          finish();
          reject(dead ?? (codeOf(err) ? err : unavailable(`the audit vat failed ${what}`, err)));
        },
      );
    });
  };

  /**
   * Appends bypass CapTP: one frame carries the joined texts as a plain
   * string (CapTP would JSON-encode it once more and parse it on the other
   * side), and the vat answers with one frame. `close` drains the appends
   * in flight before it calls the vat.
   */
  const rawAppend = (joined: string): Promise<AuditBatchRef> =>
    new Promise<AuditBatchRef>((resolve, reject) => {
      const id = nextAppendId;
      nextAppendId += 1;
      rawPending.set(id, { resolve, reject });
      try {
        vatLink.send({ type: AUDIT_APPEND, id, joined });
      } catch (err) {
        rawPending.delete(id);
        reject(unavailable('cannot reach the audit vat', err));
      }
    });

  const { append, drain } = makeBatchingAppender(
    texts => call(() => rawAppend(texts.join('\n')), 'append', appendStallMs),
    () => {
      if (dead) throw dead;
      if (closing) throw unavailable('the audit sink is closed');
    },
  );

  const ready = async (): Promise<void> => {
    try {
      await call(v => E(v).size(), 'ready');
    } catch (err) {
      if (openFailure) throw ztError(openFailure.code, openFailure.message);
      throw err;
    }
  };

  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await drain();
      try {
        if (!dead) await call(v => E(v).close(), 'close');
      } finally {
        die(unavailable('the audit sink is closed'));
      }
    })());

  return harden({
    append,
    ready,
    read: (fromSeq: number, count: number) => call(v => E(v).read(fromSeq, count), 'read'),
    size: () => call(v => E(v).size(), 'size'),
    rootHash: () => call(v => E(v).rootHash(), 'rootHash'),
    inclusionProof: (index: number, treeSize: number) =>
      call(v => E(v).inclusionProof(index, treeSize), 'inclusionProof'),
    consistencyProof: (size1: number, size2: number) =>
      call(v => E(v).consistencyProof(size1, size2), 'consistencyProof'),
    checkpoint: () => call(v => E(v).checkpoint(), 'checkpoint'),
    rotateKey: () => call(v => E(v).rotateKey(), 'rotateKey'),
    close,
  });
};
harden(startAuditVat);
