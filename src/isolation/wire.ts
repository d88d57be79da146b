/**
 * The wire between the kernel and a process vat: length-prefixed frames of
 * JSON over a plain byte pipe (fd 3 of the vat), and nothing else.
 *
 * Frame: a 4-byte unsigned big-endian length `n`, then `n` bytes of UTF-8
 * JSON encoding one CapTP message: an object whose `type` is a `CTP_…`
 * string. `n` is at most `maxFrameBytes` (default `MAX_FRAME_BYTES`).
 *
 * Invariants:
 * - Nothing a vat sends reaches Node's child-process IPC code: the vat has
 *   no IPC channel, so there is no handle passing, no `NODE_HANDLE_ACK`, no
 *   line parser of Node's; descriptors sent as ancillary data on the pipe
 *   are dropped by the operating system (the kernel reads it with plain
 *   reads).
 * - Strict: a length of zero or over the limit, bytes that are not UTF-8
 *   (or carry a byte-order mark), text that is not JSON, JSON that is not a
 *   CapTP message, and a partial frame when the pipe ends are each a
 *   protocol violation (ZT_VAT_PROTOCOL). The decoder then stops for good:
 *   the vat that sent it is ended; nothing after the first bad byte is read.
 * - Bounded and incremental: the decoder holds at most one frame's header
 *   and body (4 + `maxFrameBytes` bytes); a frame that arrives in one chunk
 *   is decoded from that chunk without a copy, one that spans chunks is
 *   copied once into a buffer of exactly its size. Chunks are byte arrays,
 *   never concatenated strings.
 *
 * Threat: a compromised vat owns its end of the pipe and writes whatever it
 * likes; the worst it may cause is its own end.
 *
 * Pure: bytes in, messages out; the Node adapters own the pipes.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';

/**
 * The largest frame, in bytes of JSON (32 MiB). Sized for one CapTP message
 * carrying a value of the kernel's default byte limit for one effect (16 MiB,
 * `limits.maxBytes`), with room for JSON's escaping twice over (CapTP
 * carries each value as a JSON string inside the JSON message). Plain data
 * as a whole may be larger (`PLAIN_DATA_LIMITS.maxTotalSize` counts 32 Mi
 * code points); through a process vat, this is the limit of one message.
 */
export const MAX_FRAME_BYTES = 32 * 1024 * 1024;

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;

/** The largest length a 4-byte prefix can state (and so the largest `maxFrameBytes`). */
const MAX_ENCODABLE = 0xffff_ffff;

const CAPTP_TYPE = /^CTP_[A-Z_]{1,64}$/;

const violation = (reason: string, details?: Record<string, unknown>) => new ZtError('ZT_VAT_PROTOCOL', reason, details);

const checkMaxFrame = (maxFrameBytes: number): number => {
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > MAX_ENCODABLE) {
    throw new ZtError('ZT_BAD_ARGUMENT', `maxFrameBytes must be an integer from 1 to ${MAX_ENCODABLE}`);
  }
  return maxFrameBytes;
};

/** Whether `message` has the one shape the wire carries: a record with a CapTP `type`. */
export const isWireMessage = (message: unknown): message is Record<string, unknown> & { type: string } =>
  message !== null &&
  typeof message === 'object' &&
  !Array.isArray(message) &&
  typeof (message as { type?: unknown }).type === 'string' &&
  CAPTP_TYPE.test((message as { type: string }).type);
harden(isWireMessage);

/**
 * Which messages a wire carries. Agent vats' wires carry CapTP alone
 * (`isWireMessage`, the default); the audit vat's also carries its appends.
 */
export type MessageCheck = (message: unknown) => message is Record<string, unknown>;

const encoder = new TextEncoder();

/**
 * One message as one frame. Throws ZT_VAT_PROTOCOL when the message is not a
 * CapTP message or its JSON exceeds `maxFrameBytes` (nothing is sent then).
 */
export const encodeFrame = (message: unknown, maxFrameBytes: number = MAX_FRAME_BYTES, accepts: MessageCheck = isWireMessage): Uint8Array => {
  const max = checkMaxFrame(maxFrameBytes);
  if (!accepts(message)) throw violation(accepts === isWireMessage ? 'only CapTP messages cross the wire' : 'only messages of this wire cross it');
  // JSON.stringify escapes lone surrogates, so the text is always valid UTF-8.
  const json = JSON.stringify(message);
  // Each UTF-16 unit is at least one byte of UTF-8: refuse before encoding a text that can only be too large.
  if (json.length > max) throw violation(`a message of more than ${max} bytes`, { limit: max });
  const body = encoder.encode(json);
  if (body.byteLength > max) throw violation(`a message of more than ${max} bytes`, { limit: max, bytes: body.byteLength });
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.byteLength);
  new DataView(frame.buffer).setUint32(0, body.byteLength, false);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
};
harden(encodeFrame);

export interface FrameDecoder {
  /**
   * Takes the next bytes read from the pipe and returns the messages they
   * complete, in order. Throws ZT_VAT_PROTOCOL on the first violation (no
   * message of that chunk is returned); every later call throws the same
   * error.
   */
  push(chunk: Uint8Array): Array<Record<string, unknown>>;
  /** The pipe ended: throws ZT_VAT_PROTOCOL if a frame was left incomplete. */
  end(): void;
  /** Bytes held for the frame in progress (at most 4 + `maxFrameBytes`). */
  readonly buffered: () => number;
}

/** An incremental, bounded decoder of frames (see the module header). */
export const makeFrameDecoder = (options: { readonly maxFrameBytes?: number; readonly accepts?: MessageCheck } = {}): FrameDecoder => {
  const max = checkMaxFrame(options.maxFrameBytes ?? MAX_FRAME_BYTES);
  const accepts = options.accepts ?? isWireMessage;
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  let headerFill = 0;
  /** The body of the frame in progress, once its length is known and it spans chunks. */
  let body: Uint8Array | undefined;
  let bodyFill = 0;
  let failure: ZtError | undefined;

  const fail = (err: ZtError): never => {
    failure = err;
    body = undefined;
    throw err;
  };

  const lengthOf = (bytes: Uint8Array, at: number): number => {
    const n = ((bytes[at] as number) * 2 ** 24) + (((bytes[at + 1] as number) << 16) | ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number));
    if (n === 0) fail(violation('an empty frame'));
    if (n > max) fail(violation(`a frame of ${n} bytes exceeds the limit of ${max}`, { limit: max, bytes: n }));
    return n;
  };

  const decodeBody = (bytes: Uint8Array): Record<string, unknown> => {
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return fail(violation('a frame that is not UTF-8'));
    }
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return fail(violation('a frame that is not JSON'));
    }
    if (!accepts(message)) return fail(violation(accepts === isWireMessage ? 'a frame that is not a CapTP message' : 'a frame that is not a message of this wire'));
    return message;
  };

  const push = (chunk: Uint8Array): Array<Record<string, unknown>> => {
    if (failure) throw failure;
    if (!(chunk instanceof Uint8Array)) fail(violation('the wire carries bytes only'));
    const out: Array<Record<string, unknown>> = [];
    let at = 0;
    while (at < chunk.byteLength) {
      if (body) {
        // A body that spans chunks: copy what this chunk holds of it.
        const take = Math.min(body.byteLength - bodyFill, chunk.byteLength - at);
        body.set(chunk.subarray(at, at + take), bodyFill);
        bodyFill += take;
        at += take;
        if (bodyFill === body.byteLength) {
          const done = body;
          body = undefined;
          bodyFill = 0;
          out.push(decodeBody(done));
        }
        continue;
      }
      if (headerFill > 0 || chunk.byteLength - at < FRAME_HEADER_BYTES) {
        // A header that spans chunks.
        const take = Math.min(FRAME_HEADER_BYTES - headerFill, chunk.byteLength - at);
        header.set(chunk.subarray(at, at + take), headerFill);
        headerFill += take;
        at += take;
        if (headerFill < FRAME_HEADER_BYTES) break;
        headerFill = 0;
        body = new Uint8Array(lengthOf(header, 0));
        bodyFill = 0;
        continue;
      }
      const n = lengthOf(chunk, at);
      at += FRAME_HEADER_BYTES;
      if (chunk.byteLength - at >= n) {
        // The whole body is in this chunk: decoded in place.
        out.push(decodeBody(chunk.subarray(at, at + n)));
        at += n;
      } else {
        body = new Uint8Array(n);
        bodyFill = 0;
      }
    }
    return out;
  };

  const end = () => {
    if (failure) throw failure;
    if (body || headerFill > 0) {
      fail(violation('the wire ended inside a frame', { buffered: headerFill + bodyFill }));
    }
  };

  return harden({ push, end, buffered: () => (body ? FRAME_HEADER_BYTES + bodyFill : headerFill) });
};
harden(makeFrameDecoder);
