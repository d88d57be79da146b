/**
 * Bench-only child process: evaluates the same decisions through
 * `@cedar-policy/cedar-wasm`, which cannot run under SES lockdown. This is
 * deliberately NOT a ZT-AAS entry point and does not import `src/init.js`:
 * it runs in a plain, separate Node process, receives a policy set and
 * requests as JSON on stdin, and writes decisions and timings as JSON on
 * stdout. Nothing of it touches the runtime.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';

interface Job {
  readonly name: string;
  readonly policies: string;
  readonly requests: ReadonlyArray<{ agent: string; action: string; path: string }>;
  readonly samples: number;
  readonly throughputRounds: number;
}

const readStdin = async (): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
};

const run = (job: Job) => {
  const parsed = cedar.preparsePolicySet(job.name, { staticPolicies: job.policies });
  if (parsed.type !== 'success') throw Error(`cedar could not parse the policy set: ${JSON.stringify(parsed)}`);
  const calls = job.requests.map(r => ({
    principal: { type: 'Agent', id: r.agent },
    action: { type: 'Action', id: r.action },
    resource: { type: 'File', id: 'f' },
    context: { path: r.path },
    preparsedPolicySetId: job.name,
    entities: [],
  }));
  const decide = (i: number): boolean => {
    const answer = cedar.statefulIsAuthorized(calls[i % calls.length] as cedar.StatefulAuthorizationCall);
    if (answer.type !== 'success') throw Error(`cedar failed: ${JSON.stringify(answer.errors)}`);
    return answer.response.decision === 'allow';
  };
  const decisions = calls.map((_, i) => decide(i));
  for (let i = 0; i < Math.min(2000, job.samples); i += 1) decide(i);
  const samples: number[] = [];
  for (let i = 0; i < job.samples; i += 1) {
    const start = performance.now();
    decide(i);
    samples.push((performance.now() - start) * 1000);
  }
  const count = calls.length * job.throughputRounds;
  const start = performance.now();
  for (let i = 0; i < count; i += 1) decide(i);
  const seconds = (performance.now() - start) / 1000;
  return { decisions, samples, perSecond: count / seconds };
};

const jobs = JSON.parse(await readStdin()) as Job[];
process.stdout.write(JSON.stringify(jobs.map(run)));
