/**
 * The membrane suite, run against both vat kinds (an in-thread loopback vat
 * and a real worker vat). Each attack test opens with the attack it checks
 * and asserts the code that stopped it.
 */
import { test } from './_prepare.js';
import { fixtureAgent, makeVatWorld } from './_vats.js';
import { VAT_KINDS } from './_vat-kinds.js';
import type { Effector } from '../src/effectors/types.js';
import type { GrantingContext } from '../src/grants.js';
import { ActionType, Capability } from '../src/types.js';
import { ErrorCodes, ZtError } from '../src/errors.js';
import { PLAIN_DATA_CASES, refusalCode } from './_plain-data-cases.js';

/** A host path only the operator may learn. */
const HOST_PATH = '/srv/operator/private/real-target.txt';

/**
 * A READ effector over a fake tree: `/dir` lists derived capabilities, `/slow`
 * waits until aborted (calling `onSlowStart` when it begins: the call is then
 * in flight in the kernel), `/host-detail` refuses with a ZtError whose
 * details name a host path, `/host-crash` throws a TypeError that names one.
 */
const makeFakeRead = (hooks: { onSlowStart?: () => void }): Effector => async ctx => {
  if (ctx.target === '/dir') {
    const { grant } = ctx as typeof ctx & GrantingContext;
    return { entries: ['a', 'b'].map(name => ({ name, cap: grant({ actionType: ActionType.READ, target: `/dir/${name}` }) })) };
  }
  if (ctx.target === '/host-detail') {
    throw new ZtError('ZT_ACCESS_DENIED', `${ctx.target}: symbolic links are not followed`, { realPath: HOST_PATH, cause: `ELOOP: open '${HOST_PATH}'` });
  }
  if (ctx.target === '/host-crash') {
    throw Object.assign(new TypeError(`cannot read properties of undefined (reading 'fd') opening ${HOST_PATH}`), { path: HOST_PATH });
  }
  if (ctx.target === '/slow') {
    hooks.onSlowStart?.();
    return new Promise((_, reject) => {
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
    });
  }
  return `content of ${ctx.target}`;
};

for (const kind of VAT_KINDS) {
  const setup = (capabilities: Array<{ id: string; target: string }>) => {
    const hooks: { onSlowStart?: () => void } = {};
    const world = makeVatWorld({ effectors: { READ: makeFakeRead(hooks) }, vatPowers: kind.powers });
    world.kernel.registerAgent('probe');
    for (const { id, target } of capabilities) {
      world.kernel.issueCapability(new Capability({ id, actionType: ActionType.READ, target, holder: 'probe' }));
    }
    const run = async (scenario: string, ids = capabilities.map(c => c.id), onStart?: () => Promise<void>) => {
      const handle = await world.launch('probe', fixtureAgent('membrane-probe'), { capabilities: ids, input: { scenario } });
      await onStart?.();
      const outcome = await handle.result;
      await world.kernel.flush();
      return outcome;
    };
    return { ...world, run, hooks };
  };
  const fileCap = [{ id: 'file', target: '/data/f.txt' }];

  test(`[${kind.name}] a caretaker forwards to the kernel and data comes back frozen`, async t => {
    const { run, sink } = setup(fileCap);
    const outcome = await run('read');
    t.deepEqual(outcome.value, { value: 'content of /data/f.txt', frozen: true });
    t.like(sink.records.find(r => r.type === 'request'), { via: 'vat', agentId: 'probe', capabilityId: 'file', decision: 'allow' });
    t.like((await run('describe')).value, { name: 'file', capabilityId: 'file', actionType: 'READ', target: '/data/f.txt' });
    t.is(sink.records.filter(r => r.type === 'request').length, 1, 'describe() is not recorded');
  });

  test(`[${kind.name}] attack: calling a method outside the interface is refused with ZT_NOT_IN_INTERFACE and audited`, async t => {
    const { run, sink } = setup(fileCap);
    t.deepEqual((await run('unknown-method')).value, { ok: false, code: 'ZT_NOT_IN_INTERFACE' });
    t.like(sink.records.find(r => r.type === 'request'), { decision: 'deny', code: 'ZT_NOT_IN_INTERFACE', method: 'deleteEverything' });
    t.deepEqual((await run('wrong-kind-method')).value, { ok: false, code: 'ZT_NOT_IN_INTERFACE' });
    t.deepEqual((await run('property')).value, { ok: false, code: 'ZT_NOT_IN_INTERFACE' });
    t.deepEqual((await run('call-as-function')).value, { ok: false, code: 'ZT_NOT_IN_INTERFACE' });
  });

  for (const scenario of ['function-argument', 'thenable-argument', 'getter-argument']) {
    test(`[${kind.name}] attack: a ${scenario.replace('-argument', '')} passed to a capability never runs in the kernel (ZT_BAD_ARGUMENT)`, async t => {
      // The agent hands the kernel a value whose behaviour would run there
      // (a function, a thenable's then, a getter, proxy traps).
      const { run, sink } = setup(fileCap);
      t.deepEqual((await run(scenario)).value, { ok: false, code: 'ZT_BAD_ARGUMENT' });
      t.false(sink.records.some(r => r.type === 'request' && r.decision === 'allow'), 'nothing was executed');
    });
  }

  test(`[${kind.name}] attack: a proxy passed to a capability is copied as data; its traps never run in the kernel`, async t => {
    // The proxy claims to be { path: '/etc/passwd' }. The vat copies what it
    // reports into plain data; the kernel decides on that copy.
    const { run, sink } = setup(fileCap);
    t.deepEqual((await run('proxy-argument')).value, { ok: false, code: 'ZT_WRONG_TARGET' });
    t.like(sink.records.find(r => r.type === 'request'), { decision: 'deny', code: 'ZT_WRONG_TARGET', target: '/etc/passwd' });
  });

  test(`[${kind.name}] attack: a capability passed where data is expected is refused with ZT_BAD_ARGUMENT`, async t => {
    const { run, sink } = setup(fileCap);
    t.deepEqual((await run('capability-as-argument')).value, { ok: false, code: 'ZT_BAD_ARGUMENT' });
    t.like(sink.records.find(r => r.type === 'request'), { decision: 'deny', code: 'ZT_BAD_ARGUMENT', method: 'read' });
  });

  test(`[${kind.name}] every argument value is refused with ZT_BAD_ARGUMENT (ZT_NOT_RECORDABLE for a lone surrogate) and one record of one shape, or accepted and recorded`, async t => {
    // Values outside plain data (NaN, lone surrogates, sparse arrays, cycles,
    // getters, exotic objects, past the bounds) must be refused the same way
    // whichever side catches them (the agent vat or the membrane), with one
    // decision record of the same shape, and never reach the audit log.
    const world = makeVatWorld({ effectors: { TOOL: async ctx => ({ seen: (ctx.args.arguments as { v: unknown }).v }) }, vatPowers: kind.powers });
    world.kernel.registerAgent('probe');
    world.kernel.issueCapability(new Capability({ id: 'tool', actionType: ActionType.TOOL, target: 'srv/tool', holder: 'probe' }));
    const shapes = new Set<string>();
    for (const c of PLAIN_DATA_CASES) {
      const before = world.sink.records.length;
      const handle = await world.launch('probe', fixtureAgent('argument-probe'), { capabilities: ['tool'], input: { value: c.name } });
      const outcome = await handle.result;
      await world.kernel.flush();
      const requests = world.sink.records.slice(before).filter(r => r.type === 'request');
      t.is(requests.length, 1, `${c.name}: one decision record`);
      const [request] = requests as [Record<string, unknown>];
      const value = outcome.value as { ok: boolean; code?: string; value?: unknown };
      if (c.vat === 'refused') {
        t.like(value, { ok: false, code: refusalCode(c) }, c.name);
        t.like(request, { decision: 'deny', code: refusalCode(c), method: 'call', capabilityId: 'tool', actionType: 'TOOL', decidedBy: 'kernel' }, c.name);
        shapes.add(Object.keys(request).sort().join(','));
      } else {
        t.deepEqual(value, { ok: true, value: { seen: c.recorded } }, c.name);
        t.like(request, { decision: 'allow' }, c.name);
        t.deepEqual((request.args as { arguments: unknown }).arguments, { v: c.recorded }, `${c.name}: recorded as acted on`);
      }
    }
    t.deepEqual([...shapes], ['actionType,agentId,capabilityId,code,decidedBy,decision,method,policyHash,requestId,rules,seq,time,type,via']);
  });

  test(`[${kind.name}] attack: a forged object shaped like a capability reaches nothing`, async t => {
    const { run, sink } = setup(fileCap);
    t.deepEqual((await run('forged-capability')).value, { ok: true, value: 'forged read' });
    t.false(sink.records.some(r => r.type === 'request'), 'the kernel saw no request: a forgery is just a local object');
  });

  test(`[${kind.name}] derived capabilities cross as working caretakers bound to the same holder`, async t => {
    const { run, kernel } = setup([{ id: 'dir', target: '/dir' }]);
    const outcome = await run('derived');
    t.is(outcome.error, undefined);
    t.like(outcome.value, {
      names: ['a', 'b'],
      contents: ['content of /dir/a', 'content of /dir/b'],
      // A derived capability has no name of the agent's: it is described under its id made an identifier.
      again: { name: 'dir_1', capabilityId: 'dir~1', actionType: 'READ', target: '/dir/a' },
    });
    t.like(kernel.getCapability('dir~2'), { holder: 'probe', parent: 'dir' });
  });

  test(`[${kind.name}] revocation mid-call: a pending call is rejected with ZT_REVOKED`, async t => {
    const { run, kernel, sink, hooks } = setup([{ id: 'slow', target: '/slow' }]);
    const started = new Promise<void>(resolve => {
      hooks.onSlowStart = resolve;
    });
    const outcome = await run('slow-read', ['slow'], async () => {
      await started;
      kernel.revokeCapability('slow', 'cut mid-call');
    });
    t.deepEqual(outcome.value, { ok: false, code: 'ZT_REVOKED' });
    const revoked = sink.records.find(r => r.type === 'capability.revoked');
    t.is((revoked?.inFlight as string[]).length, 1, 'the cut call is named in the revocation record');
  });

  test(`[${kind.name}] calls an agent leaves running are cut with ZT_TERMINATED when its vat ends`, async t => {
    const { run, sink } = setup([{ id: 'slow', target: '/slow' }]);
    const outcome = await run('fire-and-forget', ['slow']);
    t.is(outcome.value, 'returned early');
    const finished = sink.records.find(r => r.type === 'agent.finished');
    const request = sink.records.find(r => r.type === 'request' && r.decision === 'allow');
    t.deepEqual(finished?.inFlightCut, [request?.requestId]);
    await new Promise(resolve => setTimeout(resolve, 50));
    t.like(sink.records.find(r => r.type === 'outcome'), { requestId: request?.requestId, status: 'failed', code: 'ZT_TERMINATED' });
  });

  test(`[${kind.name}] attack: an error whose details name a host path reaches the agent without them`, async t => {
    // The effector refuses with operator-only details (the real path behind a
    // symbolic link, the OS error). The agent inspects the refusal it gets:
    // its own properties, its prototype, its stack, its JSON.
    const { run, sink } = setup([{ id: 'file', target: '/host-detail' }]);
    const seen = (await run('refusal-seen')).value;
    t.deepEqual(seen, {
      own: ['code', 'message', 'name'],
      record: { name: 'ZtError', code: 'ZT_ACCESS_DENIED', message: 'ZT_ACCESS_DENIED: /host-detail: symbolic links are not followed' },
      isError: false,
      stack: 'undefined',
    });
    t.false(JSON.stringify(seen).includes(HOST_PATH));
    t.like(sink.records.find(r => r.type === 'outcome'), { status: 'failed', code: 'ZT_ACCESS_DENIED' });
  });

  test(`[${kind.name}] attack: a foreign error thrown inside an effector reaches the agent as the generic text of its code`, async t => {
    // The effector crashes with a TypeError whose message and own properties
    // name a host path: the agent learns the code and its table text only.
    const { run, sink } = setup([{ id: 'file', target: '/host-crash' }]);
    const seen = (await run('refusal-seen')).value as { record: unknown };
    t.deepEqual(seen.record, { name: 'ZtError', code: 'ZT_EFFECT_FAILED', message: `ZT_EFFECT_FAILED: ${ErrorCodes.ZT_EFFECT_FAILED}` });
    t.false(JSON.stringify(seen).includes(HOST_PATH));
    t.like(sink.records.find(r => r.type === 'outcome'), { status: 'failed', code: 'ZT_EFFECT_FAILED' });
  });

  test(`[${kind.name}] attack: re-using a capability after revocation through a cached promise is refused with ZT_REVOKED`, async t => {
    const { run, kernel } = setup(fileCap);
    const outcome = await run('cached-after-revoke', ['file'], async () => {
      while ((kernel.getCapability('file')?.uses ?? 0) < 3) await new Promise(resolve => setTimeout(resolve, 5));
      kernel.revokeCapability('file');
    });
    t.is((outcome.value as { code: string }).code, 'ZT_REVOKED');
  });
}
