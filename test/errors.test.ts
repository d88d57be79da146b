/**
 * Errors as data: a ZtError keeps code, reason and details apart, and
 * `toAgentRefusal` alone decides what an agent sees of a thrown value.
 */
import { test } from './_prepare.js';
import { passStyleOf } from '@endo/pass-style';
import { ErrorCodes, MAX_AGENT_REASON, ZtError, codeOf, reasonOf, toAgentRefusal } from '../src/errors.js';

const HOST_PATH = '/home/operator/.ztaas/secrets/key.pem';

test('a ZtError keeps code, reason and details apart; its message is CODE: reason', t => {
  const err = new ZtError('ZT_ACCESS_DENIED', '/data/a.txt: symbolic links are not followed', { realPath: HOST_PATH });
  t.is(err.code, 'ZT_ACCESS_DENIED');
  t.is(err.reason, '/data/a.txt: symbolic links are not followed');
  t.deepEqual(err.details, { realPath: HOST_PATH });
  t.true(Object.isFrozen(err.details));
  t.is(err.message, 'ZT_ACCESS_DENIED: /data/a.txt: symbolic links are not followed');
  t.is(err.name, 'ZtError');
  t.is(new ZtError('ZT_REVOKED').reason, ErrorCodes.ZT_REVOKED, 'the reason defaults to the table text');
});

test('reasonOf reads the reason of a ZtError and nothing else', t => {
  t.is(reasonOf(new ZtError('ZT_BAD_ARGUMENT', 'argv must be an array of strings')), 'argv must be an array of strings');
  t.is(reasonOf(Error(`ZT_BAD_ARGUMENT: ${HOST_PATH}`)), undefined, 'a foreign error that spells a code is not a ZtError');
  t.is(reasonOf(harden({ name: 'ZtError', code: 'ZT_REVOKED', message: 'ZT_REVOKED: capability revoked' })), undefined);
  t.is(reasonOf('ZT_REVOKED: x'), undefined);
  t.is(reasonOf(undefined), undefined);
});

test('an agent sees a ZtError as its code and reason: a frozen passable record without details', t => {
  const err = new ZtError('ZT_ACCESS_DENIED', 'the file is not readable', { realPath: HOST_PATH, cause: `EACCES: open '${HOST_PATH}'` });
  const refusal = toAgentRefusal(err);
  t.deepEqual(refusal, { name: 'ZtError', code: 'ZT_ACCESS_DENIED', message: 'ZT_ACCESS_DENIED: the file is not readable' });
  t.true(Object.isFrozen(refusal));
  t.is(passStyleOf(refusal), 'copyRecord');
  t.false(JSON.stringify(refusal).includes(HOST_PATH));
  t.is(codeOf(refusal), 'ZT_ACCESS_DENIED', 'codeOf reads the code of a redacted refusal');
  t.is(toAgentRefusal(err, 'ZT_POLICY_ERROR').code, 'ZT_ACCESS_DENIED', 'a ZtError keeps its own code');
});

test('attack: a foreign error, its message or its stack never reaches an agent: only the code and its table text', t => {
  // Anything that is not a ZtError may carry host data in its message,
  // stack, cause or own properties; none of it is read.
  const foreign: unknown[] = [
    new TypeError(`cannot read properties of undefined (reading 'fd') at ${HOST_PATH}`),
    Object.assign(Error(`EACCES: permission denied, open '${HOST_PATH}'`), { code: 'EACCES', path: HOST_PATH }),
    Error(`ZT_REVOKED: ${HOST_PATH}`),
    Error('wrapped', { cause: new ZtError('ZT_NOT_FOUND', HOST_PATH) }),
    harden({ name: 'ZtError', code: 'ZT_REVOKED', message: `ZT_REVOKED: ${HOST_PATH}` }),
    HOST_PATH,
    undefined,
    null,
  ];
  for (const value of foreign) {
    const refusal = toAgentRefusal(value);
    t.deepEqual(refusal, { name: 'ZtError', code: 'ZT_EFFECT_FAILED', message: `ZT_EFFECT_FAILED: ${ErrorCodes.ZT_EFFECT_FAILED}` });
    t.is(passStyleOf(refusal), 'copyRecord');
  }
  t.deepEqual(toAgentRefusal(new RangeError(HOST_PATH), 'ZT_POLICY_ERROR'), {
    name: 'ZtError',
    code: 'ZT_POLICY_ERROR',
    message: `ZT_POLICY_ERROR: ${ErrorCodes.ZT_POLICY_ERROR}`,
  });
});

test('a thrown proxy, even a revoked one or one whose traps throw, becomes the generic refusal', t => {
  // Deciding what the agent sees never fails: a failure there would reject
  // with whatever the decision threw instead of a redacted refusal.
  const throwing = new Proxy(
    {},
    {
      get: () => {
        throw Error(HOST_PATH);
      },
      getPrototypeOf: () => {
        throw Error(HOST_PATH);
      },
    },
  );
  const { proxy: revoked, revoke } = Proxy.revocable({}, {});
  revoke();
  for (const value of [throwing, revoked]) {
    t.deepEqual(toAgentRefusal(value), { name: 'ZtError', code: 'ZT_EFFECT_FAILED', message: `ZT_EFFECT_FAILED: ${ErrorCodes.ZT_EFFECT_FAILED}` });
    t.is(reasonOf(value), undefined);
  }
});

test('a reason longer than an agent is shown is cut', t => {
  const refusal = toAgentRefusal(new ZtError('ZT_BAD_ARGUMENT', 'x'.repeat(MAX_AGENT_REASON + 100)));
  t.is(refusal.message, `ZT_BAD_ARGUMENT: ${'x'.repeat(MAX_AGENT_REASON)}`);
});
