/**
 * A fuzz of every public entry point of `SandboxRuntime`, through one real
 * runtime: arbitrary values — lone surrogates, sparse arrays (up to length
 * 2³²−1), proxies (revoked, or with traps that throw), getters that throw,
 * huge and non-finite numbers, bigints, symbols, functions, nested records —
 * in every argument position. Every call returns or throws a `ZtError` with
 * a code (async ones resolve or reject with one); `executeAction` always
 * resolves with an outcome. Afterwards the runtime still serves (a
 * known-good request is allowed) and the audit log verifies.
 * No lockdown here: this file runs as a host application does.
 */
import test from 'ava';
import { fc } from '@fast-check/ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyStore } from '../src/audit/verify-node.js';
import { ActionRequest, ActionType, Capability, ErrorCodes, SandboxRuntime, ZtError } from '../src/index.js';

const SEED = 0x5eed_13;
const RUNS = 3_200;

const revoked = (() => {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
})();
const trapThrows = new Proxy({}, {
  ownKeys() {
    throw new Error('trap');
  },
  get() {
    throw new Error('trap');
  },
  getPrototypeOf() {
    throw new Error('trap');
  },
  getOwnPropertyDescriptor() {
    throw new Error('trap');
  },
});
const arrayProxy = new Proxy(['a', 'b'], {
  get(target, key) {
    if (key === 'length') throw new Error('trap');
    return Reflect.get(target, key);
  },
});
const getterThrows = (key: string): Record<string, unknown> =>
  Object.defineProperty({}, key, {
    enumerable: true,
    get() {
      throw new Error('getter');
    },
  });
const sparseGiant = (() => {
  const a: unknown[] = [];
  a.length = 2 ** 32 - 1;
  a[3] = 'x';
  return a;
})();

const loneSurrogate = fc.tuple(fc.string({ maxLength: 4 }), fc.integer({ min: 0xd800, max: 0xdfff })).map(([s, c]) => `${s}${String.fromCharCode(c)}`);
// Chosen by index (fast-check inspects constants, and a revoked proxy throws on that).
const SPECIALS: readonly unknown[] = [
  revoked,
  trapThrows,
  arrayProxy,
  getterThrows('agentId'),
  getterThrows('labels'),
  sparseGiant,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.MAX_SAFE_INTEGER + 2,
  2 ** 32 - 1,
  -0,
  NaN,
  Infinity,
  10n ** 30n,
  Symbol('s'),
  () => 1,
  new Date(0),
  new Map(),
  Object.create({ inherited: 1 }),
];
/** A stand-in for a special value, swapped in only when the call is made (`materialize`). */
class Special {
  readonly index: number;
  constructor(index: number) {
    this.index = index;
  }
}
const special = fc.nat({ max: SPECIALS.length - 1 }).map(i => new Special(i));
const materialize = (v: unknown): unknown => {
  if (v instanceof Special) return SPECIALS[v.index];
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    out.length = v.length;
    for (const key of Object.keys(v)) out[Number(key)] = materialize(v[Number(key)]);
    return out;
  }
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out = {};
    for (const [key, e] of Object.entries(v)) Object.defineProperty(out, key, { value: materialize(e), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return v;
};
const leaf = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: loneSurrogate },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: special },
);
const { value } = fc.letrec(tie => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.sparseArray(tie('value'), { maxLength: 6, noTrailingHole: false }),
    fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), loneSurrogate, fc.constantFrom('__proto__', 'labels', 'id', 'target', 'args')), tie('value')), { maxLength: 4 }).map(e => Object.fromEntries(e)),
  ),
}));
/** Near-valid records, so the fuzz also reaches past the first check. */
const actionType = fc.oneof(fc.constantFrom('READ', 'WRITE', 'NETWORK', 'EXECUTE', 'TOOL'), value);
const idLike = fc.oneof(fc.constantFrom('a', 'fz', 'c-ok', 'good-agent'), fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), loneSurrogate, value);
const capabilityLike = fc.record({ id: idLike, actionType, target: fc.oneof(fc.constant('/tmp/x'), loneSurrogate.map(s => `/tmp/${s}`), value), holder: idLike, constraints: fc.option(value, { nil: undefined }) }, { requiredKeys: [] });
const requestLike = fc.record({ capabilityId: idLike, agentId: idLike, actionType, target: fc.oneof(fc.constant('/tmp/x'), value), args: value }, { requiredKeys: [] });
const labelsLike = fc.oneof(value, fc.record({ labels: fc.oneof(value, fc.array(fc.oneof(idLike, loneSurrogate), { maxLength: 3 }), fc.sparseArray(idLike, { maxLength: 4 }), fc.constant(sparseGiant)) }, { requiredKeys: [] }));
const launchLike = fc.oneof(value, fc.record({ agentId: idLike, module: fc.oneof(fc.constant('/nonexistent/agent.js'), loneSurrogate.map(s => `/tmp/${s}/a.js`), value), capabilities: fc.oneof(value, fc.constant(sparseGiant), fc.array(idLike, { maxLength: 3 })), input: value, limits: value, isolation: fc.oneof(fc.constant('worker'), value) }, { requiredKeys: [] }));

type Call = readonly [string, ...unknown[]];
const call: fc.Arbitrary<Call> = fc.oneof(
  fc.tuple(fc.constant('constructor'), value),
  fc.tuple(fc.constant('registerAgent'), idLike, labelsLike),
  fc.tuple(fc.constant('issueCapability'), fc.oneof(capabilityLike, value)),
  fc.tuple(fc.constant('getCapability'), idLike),
  fc.tuple(fc.constant('listCapabilities'), fc.oneof(value, fc.record({ agentId: idLike, state: fc.oneof(fc.constantFrom('live', 'revoked'), value) }, { requiredKeys: [] }))),
  fc.tuple(fc.constant('executeAction'), fc.oneof(requestLike, value)),
  fc.tuple(fc.constant('revokeCapability'), idLike, value),
  fc.tuple(fc.constant('revokeAgent'), idLike, value),
  fc.tuple(fc.constant('loadPolicy'), value, value),
  fc.tuple(fc.constant('loadPolicyFile'), fc.oneof(value, fc.constant('/nonexistent/policy.yaml')), value),
  fc.tuple(fc.constant('launchAgent'), launchLike),
  fc.tuple(fc.constant('recoverAudit'), value.filter(v => v !== undefined)),
  fc.tuple(fc.constant('audit.read'), value, value),
  fc.tuple(fc.constant('policyHash')),
);

const isCoded = (err: unknown): boolean => err instanceof ZtError && Object.hasOwn(ErrorCodes, err.code) && err.code !== 'ZT_KERNEL_UNAVAILABLE';

test('fuzz: every public entry point of SandboxRuntime, 3,200 arbitrary calls; the runtime keeps serving and the log verifies', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-fuzz-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const target = join(dir, 'data.txt');
  await writeFile(target, 'known good');
  const storeDir = join(dir, 'store');
  const sandbox = new SandboxRuntime({ storeDir, isolation: 'worker' });
  sandbox.registerAgent('good-agent');
  sandbox.issueCapability(new Capability({ id: 'good-cap', actionType: ActionType.READ, target, holder: 'good-agent' }));
  sandbox.registerAgent('fz');
  let constructed = 0;

  const run = async (c: Call): Promise<string | undefined> => {
    const [name, a, b] = c.map(materialize) as unknown as Call;
    const sync = (fn: () => unknown): string | undefined => {
      try {
        fn();
        return undefined;
      } catch (err) {
        return isCoded(err) ? undefined : `${name} threw ${String(err)}`;
      }
    };
    const later = async (fn: () => Promise<unknown>): Promise<string | undefined> => {
      try {
        await fn();
        return undefined;
      } catch (err) {
        return isCoded(err) ? undefined : `${name} rejected with ${String(err)}`;
      }
    };
    switch (name) {
      case 'constructor': {
        // Never in the working directory: a record gets this test's folder.
        const options = a !== revoked && a !== trapThrows && a !== null && typeof a === 'object' && !Array.isArray(a) && Object.getPrototypeOf(a) === Object.prototype ? { ...(a as object), storeDir: join(dir, `ctor-${constructed}`) } : a;
        try {
          const other = new SandboxRuntime(options as never);
          constructed += 1;
          await other.shutdown();
          return undefined;
        } catch (err) {
          return isCoded(err) ? undefined : `constructor threw ${String(err)}`;
        }
      }
      case 'registerAgent':
        return sync(() => sandbox.registerAgent(a as never, b as never));
      case 'issueCapability':
        return sync(() => sandbox.issueCapability(a as never));
      case 'getCapability':
        return sync(() => sandbox.getCapability(a as never));
      case 'listCapabilities':
        return sync(() => sandbox.listCapabilities(a as never));
      case 'revokeCapability':
        return a === 'good-cap' ? undefined : sync(() => sandbox.revokeCapability(a as never, b as never));
      case 'revokeAgent':
        return a === 'good-agent' ? undefined : sync(() => sandbox.revokeAgent(a as never, b as never));
      case 'loadPolicy':
        return sync(() => sandbox.loadPolicy(a, b as never));
      case 'policyHash':
        return sync(() => sandbox.policyHash);
      case 'loadPolicyFile':
        return later(() => sandbox.loadPolicyFile(a as never, b as never));
      case 'launchAgent':
        return later(async () => {
          const handle = await sandbox.launchAgent(a as never);
          await handle.terminate('fuzz');
        });
      case 'recoverAudit':
        return later(() => sandbox.recoverAudit(a as never));
      case 'audit.read':
        return later(() => sandbox.audit.read(a as never, b as never));
      case 'executeAction': {
        let outcome: { status?: unknown; error?: { code?: unknown } } | undefined;
        try {
          outcome = (await sandbox.executeAction(a as never)) as typeof outcome;
        } catch (err) {
          return `executeAction rejected with ${String(err)}`;
        }
        if (outcome?.status === 'succeeded') return undefined;
        return typeof outcome?.error?.code === 'string' && outcome.error.code !== 'ZT_KERNEL_UNAVAILABLE' && outcome.error.code !== 'ZT_AUDIT_UNAVAILABLE'
          ? undefined
          : `executeAction answered ${JSON.stringify(outcome)}`;
      }
      default:
        return `unknown call ${name}`;
    }
  };

  let cases = 0;
  await fc.assert(
    fc.asyncProperty(call, async c => {
      cases += 1;
      const problem = await run(c);
      if (problem !== undefined) t.log(problem);
      if (problem !== undefined) throw new Error(problem);
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
  t.true(cases >= 3_000);

  const known = await sandbox.executeAction(new ActionRequest({ capabilityId: 'good-cap', agentId: 'good-agent', actionType: ActionType.READ, target }));
  t.like(known, { status: 'succeeded', result: 'known good' });
  t.truthy(known.audit.decision);
  await sandbox.shutdown();
  const verified = await verifyStore(join(storeDir, 'audit'));
  t.true(verified.size > 0);
});
