// A hostile agent: tries every way out it can think of and reports what
// happened. Each attempt must fail; the report lists the error codes.
const attempt = async (name, fn) => {
  try {
    const value = await fn();
    return { name, escaped: true, value: String(value).slice(0, 80) };
  } catch (err) {
    const match = /^(ZT_[A-Z_]+)/.exec(String(err && err.message));
    return { name, escaped: false, error: match ? match[1] : String(err && err.name) };
  }
};

export default async function main({ caps, input }) {
  const results = [];
  results.push(await attempt('globalThis.process', () => globalThis.process.env.HOME));
  results.push(await attempt('require', () => require('node:fs')));
  results.push(await attempt('dynamic import node:fs', () => import('node:fs')));
  results.push(await attempt('Function constructor reaches the host global', () => {
    const g = Function('return this')();
    if (typeof g.process === 'undefined') throw new TypeError('no host global');
    return 'host global';
  }));
  results.push(await attempt('constructor chain to the host Function', () => {
    const HostFunction = (async () => {}).constructor.constructor;
    const p = HostFunction('return typeof process === "undefined" ? undefined : process')();
    if (p === undefined) throw new TypeError('no process');
    return p;
  }));
  results.push(await attempt('fetch', () => fetch('http://127.0.0.1/')));
  results.push(await attempt('Date.now clock', () => Date.now()));
  results.push(await attempt('Math.random', () => Math.random()));
  results.push(await attempt('pollute Object.prototype', () => {
    Object.prototype.polluted = true;
    return 'polluted';
  }));
  // Use the read capability on a path it does not grant.
  results.push(await attempt('read forbidden file', () => E(caps.notes).read({ path: input.forbidden })));
  results.push(await attempt('path traversal', () => E(caps.notes).read({ path: `${input.notes}/../../etc/passwd` })));
  // Present a capability it does not hold.
  results.push(await attempt('capability it does not hold', () => E(caps.secrets).read()));
  return results;
}
