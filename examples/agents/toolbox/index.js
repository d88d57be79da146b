// A toolbox agent: does one small job with one capability of each kind, and
// nothing else. It reads its notes (READ), counts their words with `wc`
// (EXECUTE, no shell: the argv is an array), adds a bonus with an MCP tool
// (TOOL: server-everything's get-sum), checks a status page (NETWORK), and
// writes a one-line report (WRITE).
//
// The operator grants, for example (paths and origins are the operator's):
//   notes   READ     /data/notes.txt
//   wc      EXECUTE  /usr/bin/wc        effect: { args: ['-w'] }
//   sum     TOOL     everything/get-sum
//   status  NETWORK  https://status.example.com/**   effect: { methods: ['GET'] }
//   report  WRITE    /data/out/report.txt
//
// Every call is checked, decided and audited by the kernel; a refusal
// arrives as an error whose message starts with its ZT_ code.

export default async function main({ caps, input }) {
  const text = await E(caps.notes).read();

  const counted = await E(caps.wc).run(['-w'], { stdin: text });
  if (counted.exitCode !== 0) throw Error(`wc failed: ${counted.stderr}`);
  const words = Number(counted.stdout.trim());

  const summed = await E(caps.sum).call({ a: words, b: input.bonus ?? 0 });
  const total = summed.content.map(part => part.text ?? '').join(' ');

  let status = 'not checked';
  if (caps.status && input.statusUrl) {
    const page = await E(caps.status).fetch(input.statusUrl, { method: 'GET', headers: { accept: 'text/plain' } });
    status = `${page.status} ${page.body.trim().slice(0, 40)}`;
  }

  const line = `${input.title}: ${words} words; ${total}; status ${status}\n`;
  await E(caps.report).write(line);
  return { words, total, status };
}
