/**
 * The MCP gateway bench's result (bench/gateway-bench.ts, run as a child
 * process) and its rows in `npm run bench`'s table. No imports: bench/run.ts
 * (locked down) and the bench's own plain process both load it.
 */
export interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
}

export interface GatewayBenchResult {
  readonly node: string;
  readonly date: string;
  readonly loadavg: readonly number[];
  readonly cpus: number;
  readonly latency: Record<string, Stats>;
  readonly ratios: Record<string, number>;
  readonly throughput: Record<string, { calls: number; seconds: number; perSecond: number; latency: Stats }>;
  readonly goal: { readonly ratio: number; readonly durable: number; readonly relaxed: number; readonly met: boolean };
}

const fmt = (us: number) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} µs`);

/** Table rows `[figure, p50, p99, n, goal]`, as bench/run.ts prints them. */
export const gatewayRows = (r: GatewayBenchResult): string[][] => {
  const rows: string[][] = [];
  for (const [name, s] of Object.entries(r.latency)) rows.push([`gateway: get-sum, ${name}`, fmt(s.p50), fmt(s.p99), String(s.n), '']);
  for (const [name, v] of Object.entries(r.ratios)) {
    const goal = name.startsWith('gateway durable / direct (p50, median') || name.startsWith('gateway relaxed / direct (p50, median') ? '≤ 1.3×' : '';
    rows.push([`gateway: ${name.replace(/ \(µs\)$/, '').replace(/ \(µs, /, ' (')}`, name.includes('µs') ? fmt(v) : `${v.toFixed(2)}×`, '', '', goal]);
  }
  for (const [name, t] of Object.entries(r.throughput)) rows.push([`gateway: ${name}, calls/s (latency under load)`, `${t.perSecond.toFixed(0)}/s`, `${fmt(t.latency.p50)} / ${fmt(t.latency.p99)}`, String(t.calls), '']);
  return rows;
};

