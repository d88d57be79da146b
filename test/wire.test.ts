/**
 * The wire between the kernel and a process vat (src/isolation/wire.ts and
 * the worker adapter over it): frames survive any split of the byte
 * stream; every malformed input is refused with ZT_VAT_PROTOCOL, at once,
 * with nothing held beyond one frame; after the first violation the
 * decoder and the vat are done. The attacks through a real sandbox are in
 * isolation-wire.test.ts.
 */
import { fc } from '@fast-check/ava';
import { test } from './_prepare.js';
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES, encodeFrame, makeFrameDecoder, makeProcessVatWorker, type ChildLike, type WirePipe } from '../src/isolation/process-vat.js';
import { ZtError } from '../src/errors.js';

const enc = new TextEncoder();
const concat = (parts: readonly Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
};
/** A frame of arbitrary bytes (not necessarily a message). */
const rawFrame = (body: Uint8Array | string, length?: number) => {
  const bytes = typeof body === 'string' ? enc.encode(body) : body;
  const frame = new Uint8Array(FRAME_HEADER_BYTES + bytes.byteLength);
  new DataView(frame.buffer).setUint32(0, length ?? bytes.byteLength, false);
  frame.set(bytes, FRAME_HEADER_BYTES);
  return frame;
};
const protocolError = { instanceOf: ZtError, message: /^ZT_VAT_PROTOCOL: / };

const MESSAGES = [
  { type: 'CTP_BOOTSTRAP', epoch: 0, questionID: 'q-1' },
  { type: 'CTP_CALL', epoch: 0, questionID: 'q-2', target: 'o+1', method: { body: '#["read",["/data/ü €𝄞.txt"]]', slots: [] } },
  { type: 'CTP_RETURN', epoch: 0, answerID: 'q-2', result: { body: `#"${'x'.repeat(70_000)}"`, slots: [] } },
  // A lone surrogate is escaped by JSON.stringify, so the frame is still UTF-8.
  { type: 'CTP_RESOLVE', epoch: 0, answerID: 'q-3', result: { body: '#"\uD800"', slots: [] } },
];

test('frames round-trip whatever the split: every byte boundary of a stream of frames', t => {
  const stream = concat(MESSAGES.slice(0, 2).map(m => encodeFrame(m)));
  for (let cut = 0; cut <= stream.byteLength; cut += 1) {
    const decoder = makeFrameDecoder();
    const out = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
    t.deepEqual(out, MESSAGES.slice(0, 2), `cut at ${cut}`);
    t.notThrows(() => decoder.end());
  }
});

test('frames round-trip fed one byte at a time, and a lone surrogate survives as JSON escapes it', t => {
  const stream = concat(MESSAGES.map(m => encodeFrame(m)));
  const decoder = makeFrameDecoder();
  const out = [];
  for (let i = 0; i < stream.byteLength; i += 1) out.push(...decoder.push(stream.subarray(i, i + 1)));
  t.deepEqual(out, MESSAGES);
  decoder.end();
});

test('property: any chunking of any sequence of frames yields the messages in order, and the decoder never holds more than one frame', t => {
  const messageArb = fc.record({ type: fc.constantFrom('CTP_CALL', 'CTP_RETURN', 'CTP_ABORT'), epoch: fc.nat(), text: fc.string({ unit: 'grapheme', maxLength: 200 }) });
  fc.assert(
    fc.property(fc.array(messageArb, { maxLength: 8 }), fc.array(fc.nat({ max: 300 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 64, max: 4096 }), (messages, cuts, max) => {
      const frames = messages.map(m => encodeFrame(m, 1 << 20));
      const fits = frames.every(f => f.byteLength - FRAME_HEADER_BYTES <= max);
      const stream = concat(frames);
      const decoder = makeFrameDecoder({ maxFrameBytes: max });
      const out: unknown[] = [];
      let at = 0;
      let i = 0;
      try {
        while (at < stream.byteLength) {
          const size = Math.max(1, cuts[i % cuts.length] as number);
          i += 1;
          out.push(...decoder.push(stream.subarray(at, at + size)));
          at += size;
          if (decoder.buffered() > FRAME_HEADER_BYTES + max) return false;
        }
        decoder.end();
      } catch (err) {
        return !fits && (err as ZtError).code === 'ZT_VAT_PROTOCOL';
      }
      return fits && JSON.stringify(out) === JSON.stringify(messages);
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('attack: a length over the limit is refused from its header alone, before any of its body is held', t => {
  // A vat announces a 4 GiB frame (or writes text, whose first four bytes read as a huge length).
  for (const header of [[0xff, 0xff, 0xff, 0xff], [0x7b, 0x22, 0x63, 0x6d] /* '{"cm' */, [0x68, 0x65, 0x6c, 0x6c] /* 'hell' */]) {
    const decoder = makeFrameDecoder();
    t.throws(() => decoder.push(new Uint8Array(header)), { ...protocolError, message: /exceeds the limit/ });
    t.is(decoder.buffered(), 0);
  }
  const max = 1000;
  const decoder = makeFrameDecoder({ maxFrameBytes: max });
  t.notThrows(() => decoder.push(rawFrame('', max).subarray(0, FRAME_HEADER_BYTES)));
  t.throws(() => makeFrameDecoder({ maxFrameBytes: max }).push(rawFrame('', max + 1).subarray(0, FRAME_HEADER_BYTES)), protocolError);
  // A header split across chunks is judged as soon as it is whole.
  const split = makeFrameDecoder({ maxFrameBytes: max });
  t.deepEqual(split.push(new Uint8Array([0, 0])), []);
  t.throws(() => split.push(new Uint8Array([0x10, 0])), protocolError);
  t.is(MAX_FRAME_BYTES, 32 * 1024 * 1024);
});

test('attack: an empty frame, bytes that are not UTF-8, a byte-order mark, text that is not JSON, and JSON that is not a CapTP message are each refused with ZT_VAT_PROTOCOL', t => {
  const cases: Array<[string, Uint8Array]> = [
    ['empty frame', rawFrame('')],
    ['lone continuation byte', rawFrame(new Uint8Array([0x7b, 0x80, 0x7d]))],
    ['overlong encoding of "/"', rawFrame(new Uint8Array([0xc0, 0xaf]))],
    ['surrogate encoded in UTF-8', rawFrame(new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]))],
    ['truncated sequence', rawFrame(new Uint8Array([0x22, 0xe2, 0x82, 0x22]))],
    ['byte-order mark', rawFrame('\uFEFF{"type":"CTP_ABORT"}')],
    ['not JSON', rawFrame('hello world\n')],
    ['two JSON values', rawFrame('{"type":"CTP_ABORT"}{"type":"CTP_ABORT"}')],
    ['Node IPC handle ack', rawFrame('{"cmd":"NODE_HANDLE_ACK"}')],
    ['Node IPC handle nack', rawFrame('{"cmd":"NODE_HANDLE_NACK"}\n')],
    ['array', rawFrame('[{"type":"CTP_ABORT"}]')],
    ['null', rawFrame('null')],
    ['number', rawFrame('42')],
    ['string', rawFrame('"CTP_ABORT"')],
    ['type not a string', rawFrame('{"type":["CTP_ABORT"]}')],
    ['type not CapTP', rawFrame('{"type":"NODE_HANDLE"}')],
    ['type with a suffix', rawFrame('{"type":"CTP_ABORT\\n"}')],
  ];
  for (const [name, frame] of cases) {
    // Whole, and after a good frame in the same chunk: the good one is not lost, the bad one ends it.
    t.throws(() => makeFrameDecoder().push(frame), protocolError, name);
    const decoder = makeFrameDecoder();
    const good = encodeFrame({ type: 'CTP_ABORT', epoch: 0 });
    t.deepEqual(decoder.push(good), [{ type: 'CTP_ABORT', epoch: 0 }], name);
    t.throws(() => decoder.push(frame), protocolError, name);
    // Once broken, always broken: nothing after the first bad byte is read.
    t.throws(() => decoder.push(good), protocolError, name);
    t.throws(() => decoder.end(), protocolError, name);
  }
});

test('attack: a wire that ends inside a frame (trailing garbage) is refused at its end', t => {
  const frame = encodeFrame({ type: 'CTP_ABORT', epoch: 0 });
  for (let cut = 1; cut < frame.byteLength; cut += 1) {
    const decoder = makeFrameDecoder();
    t.deepEqual(decoder.push(frame.subarray(0, cut)), []);
    t.throws(() => decoder.end(), { ...protocolError, message: /ended inside a frame/ }, `cut at ${cut}`);
  }
  const clean = makeFrameDecoder();
  clean.push(frame);
  t.notThrows(() => clean.end());
});

test('encodeFrame sends only CapTP messages within the limit', t => {
  t.throws(() => encodeFrame({ cmd: 'NODE_HANDLE_ACK' }), protocolError);
  t.throws(() => encodeFrame(null), protocolError);
  t.throws(() => encodeFrame({ type: 'CTP_CALL', body: 'x'.repeat(200) }, 100), { ...protocolError, message: /more than 100 bytes/ });
  // Counted in bytes of UTF-8, not in UTF-16 units: 40 × '€' is 120 bytes.
  t.throws(() => encodeFrame({ type: 'CTP_CALL', body: '€'.repeat(40) }, 100), protocolError);
  t.throws(() => encodeFrame({ type: 'CTP_CALL' }, 0), { message: /^ZT_BAD_ARGUMENT: / });
  t.throws(() => makeFrameDecoder({ maxFrameBytes: 2 ** 32 }), { message: /^ZT_BAD_ARGUMENT: / });
});

/** A fake child for the worker adapter: the test writes the vat's bytes, reads the kernel's. */
const fakeChild = () => {
  const on: Record<string, (...args: never[]) => void> = {};
  const wireOn: Record<string, (...args: never[]) => void> = {};
  const written: Uint8Array[] = [];
  let unread = 0;
  let kills = 0;
  const wire: WirePipe = {
    write: bytes => {
      written.push(bytes);
      unread += bytes.byteLength;
    },
    writableLength: () => unread,
    on: ((event: string, listener: (...args: never[]) => void) => {
      wireOn[event] = listener;
    }) as WirePipe['on'],
  };
  const child: ChildLike = {
    pid: 1,
    wire,
    on: ((event: string, listener: (...args: never[]) => void) => {
      on[event] = listener;
    }) as ChildLike['on'],
    stdout: null,
    stderr: null,
    kill: () => {
      kills += 1;
    },
    ref: () => undefined,
    unref: () => undefined,
  };
  return {
    child,
    written,
    kills: () => kills,
    fromVat: (bytes: Uint8Array) => (wireOn.data as (c: Uint8Array) => void)(bytes),
    vatEnded: () => (wireOn.end as () => void)(),
    exit: (code: number) => (on.close as (c: number, s: null) => void)(code, null),
  };
};

const watch = (worker: ReturnType<typeof makeProcessVatWorker>) => {
  const seen = { messages: [] as unknown[], errors: [] as unknown[], exits: [] as number[] };
  worker.on('message', m => seen.messages.push(m));
  worker.on('error', err => seen.errors.push(err));
  worker.on('exit', code => seen.exits.push(code));
  return seen;
};

test('attack: a vat writing a NODE_HANDLE_ACK line to its wire is ended with ZT_VAT_PROTOCOL, and nothing it sends afterwards is delivered', t => {
  const fake = fakeChild();
  const seen = watch(makeProcessVatWorker(fake.child));
  const good = encodeFrame({ type: 'CTP_ABORT', epoch: 0 });
  fake.fromVat(good);
  fake.fromVat(concat([good, enc.encode('{"cmd":"NODE_HANDLE_ACK"}\n'), good]));
  t.deepEqual(seen.messages, [{ type: 'CTP_ABORT', epoch: 0 }], 'nothing of the chunk that broke the wire');
  t.is(seen.errors.length, 1);
  t.true(seen.errors[0] instanceof ZtError);
  t.is((seen.errors[0] as ZtError).code, 'ZT_VAT_PROTOCOL');
  t.is(fake.kills(), 1);
  fake.fromVat(good);
  fake.vatEnded();
  t.is(seen.messages.length, 1, 'nothing after the violation');
  t.is(seen.errors.length, 1, 'one error');
  fake.exit(137);
  t.deepEqual(seen.exits, [137]);
});

test('attack: a vat that ends its wire inside a frame is ended with ZT_VAT_PROTOCOL', t => {
  const fake = fakeChild();
  const seen = watch(makeProcessVatWorker(fake.child));
  fake.fromVat(encodeFrame({ type: 'CTP_ABORT', epoch: 0 }).subarray(0, 7));
  fake.vatEnded();
  t.is((seen.errors[0] as ZtError | undefined)?.code, 'ZT_VAT_PROTOCOL');
  t.is(fake.kills(), 1);
});

test('attack: a vat that stops reading its wire is ended with ZT_VAT_PROTOCOL once the kernel holds more than two frames for it', t => {
  const fake = fakeChild();
  const max = 1000;
  const worker = makeProcessVatWorker(fake.child, { maxFrameBytes: max });
  const seen = watch(worker);
  const message = { type: 'CTP_RETURN', epoch: 0, body: 'y'.repeat(700) };
  worker.postMessage(message);
  worker.postMessage(message);
  t.deepEqual(seen.errors, []);
  t.is(fake.kills(), 0);
  worker.postMessage(message);
  t.is((seen.errors[0] as ZtError | undefined)?.code, 'ZT_VAT_PROTOCOL');
  t.regex((seen.errors[0] as Error).message, /unread/);
  t.is(fake.kills(), 1);
  worker.postMessage(message);
  t.is(fake.written.length, 3, 'nothing more is sent to a broken vat');
});

test('the kernel frames what it sends, and a message too large for the wire ends the vat instead of being sent', t => {
  const fake = fakeChild();
  const worker = makeProcessVatWorker(fake.child, { maxFrameBytes: 100 });
  const seen = watch(worker);
  worker.postMessage({ type: 'CTP_ABORT', epoch: 0 });
  t.deepEqual(makeFrameDecoder().push(fake.written[0] as Uint8Array), [{ type: 'CTP_ABORT', epoch: 0 }]);
  worker.postMessage({ type: 'CTP_RETURN', body: 'z'.repeat(200) });
  t.is(fake.written.length, 1);
  t.is((seen.errors[0] as ZtError | undefined)?.code, 'ZT_VAT_PROTOCOL');
});
