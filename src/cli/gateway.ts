/**
 * `ztaas gateway …` and the operator's commands to a running gateway:
 *
 *   ztaas gateway --config FILE [--stdio] [--http]   serve MCP clients
 *   ztaas gateway token                              a new bearer token and the hash for the config
 *   ztaas gateway reload (--config FILE | --store DIR)
 *   ztaas approvals (--config FILE | --store DIR) [--json]
 *   ztaas approve ID (--config FILE | --store DIR) [--by NAME] [--note TEXT]
 *   ztaas deny ID    (--config FILE | --store DIR) [--by NAME] [--note TEXT]
 *   ztaas revoke (--agent ID | --capability ID) (--config FILE | --store DIR) [--reason TEXT]
 *   ztaas tools (--config FILE | --store DIR) [--server NAME] [--json]
 *   ztaas tools accept SERVER/TOOL --hash sha256:… (--config FILE | --store DIR)
 *
 * The serving command writes only MCP to stdout (stdio transport) and its
 * own lines to stderr. The others talk to the gateway's control socket
 * (`<store>/gateway.sock`); with none running they fail with
 * ZT_GATEWAY_UNAVAILABLE.
 */
import { randomBytes, createHash } from 'node:crypto';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ZtError } from '../errors.js';
import { readGatewayConfig, startGateway } from '../gateway/gateway-node.js';

export { GATEWAY_USAGE } from './gateway-usage.js';

export interface GatewayIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const defaultIo: GatewayIo = {
  out: text => {
    process.stdout.write(text);
  },
  err: text => {
    process.stderr.write(text);
  },
};

const storeOf = (values: { config?: string; store?: string }): string => {
  if ((values.config === undefined) === (values.store === undefined)) throw new ZtError('ZT_BAD_ARGUMENT', 'name the gateway by --config FILE or --store DIR (one of them)');
  if (values.store !== undefined) return resolve(values.store);
  return readGatewayConfig(values.config as string).storeDir;
};

/** One request to the running gateway's control socket. */
export const askGateway = (storeDir: string, request: Record<string, unknown>): Promise<unknown> =>
  new Promise((resolvePromise, reject) => {
    const socket = connect(`${storeDir}/gateway.sock`);
    let answer = '';
    socket.setEncoding('utf8');
    socket.setTimeout(60_000, () => socket.destroy(new ZtError('ZT_GATEWAY_UNAVAILABLE', 'the gateway did not answer within 60 s')));
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', err => reject(err instanceof ZtError ? err : new ZtError('ZT_GATEWAY_UNAVAILABLE', `no gateway is running on ${storeDir}`)));
    socket.on('end', () => {
      try {
        const parsed = JSON.parse(answer) as { ok: boolean; value?: unknown; code?: string; message?: string };
        if (parsed.ok) resolvePromise(parsed.value);
        else reject(new ZtError((parsed.code ?? 'ZT_BAD_ARGUMENT') as never, parsed.message ?? 'refused'));
      } catch {
        reject(new ZtError('ZT_GATEWAY_UNAVAILABLE', 'the gateway answered with something that is not JSON'));
      }
    });
  });

const common = { config: { type: 'string' }, store: { type: 'string' }, json: { type: 'boolean' } } as const;

const serve = async (args: string[], io: GatewayIo): Promise<number> => {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, stdio: { type: 'boolean' }, http: { type: 'boolean' } }, strict: true });
  if (values.config === undefined) throw new ZtError('ZT_BAD_ARGUMENT', 'ztaas gateway needs --config FILE');
  const config = readGatewayConfig(values.config);
  const only = values.stdio === true || values.http === true;
  const transports = { stdio: only ? values.stdio === true : config.stdio !== undefined, http: only ? values.http === true : config.http !== undefined };
  if (transports.stdio && config.stdio === undefined) throw new ZtError('ZT_BAD_ARGUMENT', '--stdio needs a stdio section in the configuration');
  if (transports.http && config.http === undefined) throw new ZtError('ZT_BAD_ARGUMENT', '--http needs an http section in the configuration');
  const running = await startGateway(config, { transports, log: line => io.err(`${line}\n`) });
  io.err(`ztaas gateway: store ${config.storeDir}; ${transports.stdio ? `stdio as ${config.stdio?.agent}` : 'no stdio'}; ${running.http ? `HTTP on ${running.http.url}` : 'no HTTP'}; control ${running.controlSocket}\n`);
  await new Promise<void>(resolvePromise => {
    const stop = () => resolvePromise();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    process.on('SIGHUP', () => {
      running.reload().then(
        r => io.err(`ztaas gateway: policy reloaded (${r.policyHash}); revoked ${r.revoked.length}\n`),
        (err: unknown) => io.err(`ztaas gateway: reload failed: ${(err as Error).message}\n`),
      );
    });
    // A stdio client that goes away ends the gateway.
    if (transports.stdio) process.stdin.once('end', stop);
    void running.stdioClosed?.then(stop);
  });
  await running.close();
  return 0;
};

const token = (io: GatewayIo): number => {
  const value = `ztg_${randomBytes(32).toString('base64url')}`;
  const hash = createHash('sha256').update(value, 'utf8').digest('hex');
  io.out(`token:       ${value}\ntokenSha256: ${hash}\n`);
  return 0;
};

const show = (value: unknown, json: boolean | undefined, io: GatewayIo, render: (v: unknown) => string) => {
  io.out(json === true ? `${JSON.stringify(value, null, 2)}\n` : render(value));
};

export const gatewayCommand = async (sub: string | undefined, rest: string[], io: GatewayIo = defaultIo): Promise<number> => {
  if (sub === 'token') return token(io);
  if (sub === 'reload') {
    const { values } = parseArgs({ args: rest, options: common, strict: true });
    const result = await askGateway(storeOf(values), { op: 'reload' });
    show(result, values.json, io, v => `policy reloaded: ${(v as { policyHash: string }).policyHash}; revoked: ${((v as { revoked: string[] }).revoked ?? []).join(', ') || 'none'}\n`);
    return 0;
  }
  return serve([...(sub === undefined ? [] : [sub]), ...rest], io);
};

export const approvalsCommand = async (args: string[], io: GatewayIo = defaultIo): Promise<number> => {
  const { values } = parseArgs({ args, options: common, strict: true });
  const pending = (await askGateway(storeOf(values), { op: 'approvals' })) as Array<Record<string, unknown>>;
  show(pending, values.json, io, v => {
    const list = v as Array<Record<string, unknown>>;
    if (list.length === 0) return 'no calls wait for approval\n';
    return `${list.map(p => `${String(p.approvalId)}  ${String(p.agentId)} ${String(p.actionType)} ${String(p.target)}  args ${JSON.stringify(p.args ?? {}).slice(0, 200)}  rule ${String(p.ruleIds)}  expires ${new Date(Number(p.expiresAt)).toISOString()}`).join('\n')}\n`;
  });
  return 0;
};

export const answerCommand = async (approved: boolean, args: string[], io: GatewayIo = defaultIo): Promise<number> => {
  const { values, positionals } = parseArgs({ args, options: { ...common, by: { type: 'string' }, note: { type: 'string' } }, allowPositionals: true, strict: true });
  const [approvalId] = positionals;
  if (approvalId === undefined || positionals.length !== 1) throw new ZtError('ZT_BAD_ARGUMENT', `ztaas ${approved ? 'approve' : 'deny'} needs one approval id (see ztaas approvals)`);
  const by = values.by ?? userInfo().username;
  await askGateway(storeOf(values), { op: 'answer', approvalId, approved, by, ...(values.note === undefined ? {} : { note: values.note }) });
  io.out(`${approved ? 'approved' : 'denied'} ${approvalId} (by ${by})\n`);
  return 0;
};

export const revokeCommand = async (args: string[], io: GatewayIo = defaultIo): Promise<number> => {
  const { values } = parseArgs({ args, options: { ...common, agent: { type: 'string' }, capability: { type: 'string' }, reason: { type: 'string' } }, strict: true });
  const result = (await askGateway(storeOf(values), {
    op: 'revoke',
    ...(values.agent === undefined ? {} : { agentId: values.agent }),
    ...(values.capability === undefined ? {} : { capabilityId: values.capability }),
    ...(values.reason === undefined ? {} : { reason: values.reason }),
  })) as { revoked: boolean };
  io.out(`${result.revoked ? 'revoked' : 'already revoked'}: ${values.agent !== undefined ? `agent ${values.agent}` : `capability ${values.capability ?? ''}`}\n`);
  return 0;
};

export const toolsCommand = async (args: string[], io: GatewayIo = defaultIo): Promise<number> => {
  const { values, positionals } = parseArgs({ args, options: { ...common, server: { type: 'string' }, hash: { type: 'string' } }, allowPositionals: true, strict: true });
  const store = storeOf(values);
  if (positionals[0] === 'accept') {
    const [server, name, ...extra] = (positionals[1] ?? '').split('/');
    if (!server || !name || extra.length > 0 || values.hash === undefined) throw new ZtError('ZT_BAD_ARGUMENT', 'ztaas tools accept SERVER/TOOL --hash sha256:…');
    await askGateway(store, { op: 'accept-tool', server, name, hash: values.hash });
    io.out(`accepted ${server}/${name} at ${values.hash}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new ZtError('ZT_BAD_ARGUMENT', `unknown tools command ${positionals[0]}`);
  const tools = await askGateway(store, { op: 'tools', ...(values.server === undefined ? {} : { server: values.server }) });
  show(tools, values.json, io, v =>
    `${(v as Array<Record<string, unknown>>).map(t => `${String(t.status).padEnd(9)} ${String(t.server)}/${String(t.name)}  ${String(t.hash)}${t.pinnedHash !== undefined && t.pinnedHash !== t.hash ? `  (pinned ${String(t.pinnedHash)})` : ''}`).join('\n')}\n`,
  );
  return 0;
};
