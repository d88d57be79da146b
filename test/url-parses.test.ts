/**
 * One parse of a NETWORK target per mediated call: the kernel normalizes the
 * URL once where it checks the request, and the capability's pattern, the
 * policy (its target patterns and `url` conditions) and the http effector
 * all read that one parsed form. Counted by wrapping the global URL
 * constructor while the call runs. A redirect hop is a new URL: resolving
 * its Location is one parse, and the kernel's check of it one more, which
 * the pattern, the policy and the effector then share.
 */
import { createHash } from 'node:crypto';
import { test } from './_prepare.js';
import { makeTestKernel } from './_kernel.js';
import { makeHttpEffector, type HttpPowers, type HttpRequestSpec, type HttpResponseLike } from '../src/effectors/http.js';
import { makeNodeHttpPowers } from '../src/effectors/http-node-powers.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { makePolicy } from '../src/policy.js';
import { parseUrlTarget } from '../src/targets.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** Runs `fn` with `globalThis.URL` replaced by a subclass that counts constructions. */
const countingUrlParses = async <T>(fn: () => Promise<T>): Promise<{ value: T; parses: number }> => {
  const Original = globalThis.URL;
  let parses = 0;
  class CountingURL extends Original {
    constructor(input: string | URL, base?: string | URL) {
      super(input, base);
      parses += 1;
    }
  }
  Object.defineProperty(globalThis, 'URL', { value: CountingURL, writable: true, configurable: true });
  try {
    const value = await fn();
    return { value, parses };
  } finally {
    Object.defineProperty(globalThis, 'URL', { value: Original, writable: true, configurable: true });
  }
};

const fakeHttp = (): { powers: HttpPowers; sent: HttpRequestSpec[] } => {
  const base = makeNodeHttpPowers();
  const sent: HttpRequestSpec[] = [];
  const powers: HttpPowers = {
    ...base,
    resolve: async () => [{ address: '93.184.216.34', family: 4 }],
    request: async (spec): Promise<HttpResponseLike> => {
      sent.push(spec);
      if (spec.url.endsWith('/v1/moved')) return { status: 302, headers: { location: '/v1/items' }, body: base.encode('', 'utf8') };
      return { status: 200, headers: { 'content-type': 'text/plain' }, body: base.encode('ok', 'utf8') };
    },
  };
  return { powers, sent };
};

const POLICY = {
  version: 1,
  rules: [
    { id: 'api', effect: 'permit', actions: ['NETWORK'], targets: ['https://api.example.com/v1/**'], when: { url: { ports: [443], paths: ['/v1/**'] } } },
    { id: 'no-admin', effect: 'forbid', actions: ['NETWORK'], targets: ['https://*.example.com/v1/admin/**'] },
  ],
  delegations: [{ id: 'a-to-b', from: ['a'], to: ['b'], actions: ['NETWORK'] }],
};

// The target is spelled unnormalized (case, default port, dot segment, fragment) so every stage must normalize it.
const TARGET = 'HTTPS://API.Example.com:443/v1/x/../items?q=1#frag';
const NORMALIZED = 'https://api.example.com/v1/items?q=1';

const setup = () => {
  const { powers, sent } = fakeHttp();
  const { kernel, sink } = makeTestKernel({ policy: POLICY, effectors: { NETWORK: makeHttpEffector(powers) } });
  kernel.registerAgent('a');
  kernel.registerAgent('b');
  kernel.issueCapability(new Capability({ id: 'web', actionType: ActionType.NETWORK, target: 'https://api.example.com/v1/**', holder: 'a' }));
  return { kernel, sink, sent };
};

test.serial('a NETWORK call through the kernel parses its URL once', async t => {
  const { kernel, sink, sent } = setup();
  const request = new ActionRequest({ capabilityId: 'web', agentId: 'a', actionType: ActionType.NETWORK, target: TARGET });
  const { value: outcome, parses } = await countingUrlParses(() => kernel.execute(request, 'api'));
  t.true(outcome.ok, JSON.stringify(outcome));
  t.is(parses, 1);
  // One normalized href everywhere: the wire, the result and the audit record.
  t.is(sent[0]?.url, NORMALIZED);
  t.is((outcome.result as { url: string }).url, NORMALIZED);
  await kernel.flush();
  t.like(sink.records.find(r => r.type === 'request'), { target: NORMALIZED, decision: 'allow', rules: ['api'] });
});

test.serial('a NETWORK call on a delegated copy parses its URL once, whatever the length of the chain', async t => {
  const { kernel, sent } = setup();
  const copy = kernel.delegate({ from: 'a', capabilityId: 'web', to: 'b' });
  const request = new ActionRequest({ capabilityId: copy.id, agentId: 'b', actionType: ActionType.NETWORK, target: TARGET });
  const { value: outcome, parses } = await countingUrlParses(() => kernel.execute(request, 'api'));
  t.true(outcome.ok, JSON.stringify(outcome));
  t.is(parses, 1);
  t.is(sent[0]?.url, NORMALIZED);
});

test.serial('a denied NETWORK call is decided on the same single parse', async t => {
  const { kernel, sink } = setup();
  const request = new ActionRequest({ capabilityId: 'web', agentId: 'a', actionType: ActionType.NETWORK, target: 'https://api.example.com/v1/admin/keys' });
  const { value: outcome, parses } = await countingUrlParses(() => kernel.execute(request, 'api'));
  t.is(outcome.error?.code, 'ZT_POLICY_DENIED');
  t.is(parses, 1);
  await kernel.flush();
  t.like(sink.records.find(r => r.type === 'request'), { target: 'https://api.example.com/v1/admin/keys', rules: ['no-admin'] });
});

test.serial('a redirect hop is parsed once to resolve it and once to check it', async t => {
  const { kernel, sink, sent } = setup();
  const request = new ActionRequest({ capabilityId: 'web', agentId: 'a', actionType: ActionType.NETWORK, target: 'https://api.example.com/v1/moved' });
  const { value: outcome, parses } = await countingUrlParses(() => kernel.execute(request, 'api'));
  t.true(outcome.ok, JSON.stringify(outcome));
  t.is((outcome.result as { redirects: number }).redirects, 1);
  t.is(parses, 1 + 2);
  t.deepEqual(sent.map(s => s.url), ['https://api.example.com/v1/moved', NORMALIZED.replace('?q=1', '')]);
  await kernel.flush();
  t.like(sink.records.find(r => r.type === 'request.hop'), { target: 'https://api.example.com/v1/items', decision: 'allow', rules: ['api'] });
});

test('attack: a parsed form for another URL does not steer the policy', t => {
  // A caller hands the policy a target together with the parsed form of a
  // different URL, hoping the rules read the parsed form. The policy uses a
  // parsed form only when its href is the target; otherwise it parses.
  const policy = makePolicy(POLICY, sha, canonicalJson);
  const admin = 'https://api.example.com/v1/admin/keys';
  const items = parseUrlTarget('https://api.example.com/v1/items');
  t.like(policy.decide({ agentId: 'a', actionType: 'NETWORK', target: admin, parsedUrl: items }), { allowed: false, code: 'ZT_POLICY_DENIED', rules: ['no-admin'] });
  t.like(policy.decide({ agentId: 'a', actionType: 'NETWORK', target: items.href, parsedUrl: parseUrlTarget(admin) }), { allowed: true, rules: ['api'] });
  // A look-alike record whose href is the target but whose path is another's
  // is not a parsed form the kernel made: the policy parses the target itself.
  const lookAlike = harden({ ...parseUrlTarget(admin), path: '/v1/items' });
  t.like(policy.decide({ agentId: 'a', actionType: 'NETWORK', target: admin, parsedUrl: lookAlike }), { allowed: false, code: 'ZT_POLICY_DENIED', rules: ['no-admin'] });
});
