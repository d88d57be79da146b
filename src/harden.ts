/**
 * `harden` for modules that run on both sides of the kernel boundary.
 *
 * Inside the kernel vat, the agent and audit vats and the test harness the
 * realm is locked down, and this is SES's `harden` (found on
 * `Object[Symbol.for('harden')]` or `globalThis.harden`): transitive freezing
 * along properties and prototypes, with frozen intrinsics to stand on.
 *
 * In the host application's realm — which ZT-AAS never locks down — it
 * freezes the object and, transitively, its own properties, without walking
 * prototypes: shared intrinsics such as `Object.prototype` stay as the host
 * left them, and promises stay extensible (Node's async hooks write to
 * them). Unlike `@endo/harden`, it installs nothing on `Object` either,
 * so a host that later calls `lockdown()` itself is free to do so.
 */
type Harden = <T>(value: T) => T;

const symbolForHarden = Symbol.for('harden');

const freezeOwn: Harden = <T>(root: T): T => {
  const seen = new WeakSet<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null) continue;
    if (seen.has(value)) continue;
    seen.add(value);
    // Typed arrays cannot be frozen while they have elements.
    if (ArrayBuffer.isView(value)) continue;
    // Node's async hooks (AsyncLocalStorage on Node 20 and 22) write to
    // every promise the application awaits: a frozen one kills the host.
    if (value instanceof Promise) continue;
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) {
      const desc = Object.getOwnPropertyDescriptor(value, key);
      if (!desc) continue;
      if ('value' in desc) stack.push(desc.value);
      else stack.push(desc.get, desc.set);
    }
  }
  return root;
};

let selected: Harden | undefined;

const select = (): Harden => {
  const intrinsic = (Object as unknown as Record<symbol, unknown>)[symbolForHarden];
  if (typeof intrinsic === 'function') return intrinsic as Harden;
  const global = (globalThis as { harden?: unknown }).harden;
  if (typeof global === 'function') return global as Harden;
  return freezeOwn;
};

/**
 * SES's `harden` where the realm is locked down, else an own-properties
 * freeze. Only SES's is remembered: a call made before a realm locks down
 * never leaves that realm with the weaker freeze afterwards.
 */
export const harden: Harden = <T>(value: T): T => {
  if (selected) return selected(value);
  const found = select();
  if (found !== freezeOwn) selected = found;
  return found(value);
};
Object.freeze(harden);
