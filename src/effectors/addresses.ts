/**
 * IP address classification for the HTTP effector. Invariant: an address
 * is "public" only if it lies in none of the special-purpose ranges below;
 * everything unparseable is treated as forbidden (fail closed).
 *
 * Threat: server-side request forgery. A hostname the capability permits
 * (or a redirect) that resolves to loopback, link-local (169.254.169.254 is
 * the cloud metadata service), private, shared (CGNAT), multicast, reserved
 * or documentation space, including the same addresses spelt as IPv6
 * (IPv4-mapped `::ffff:127.0.0.1`, NAT64 `64:ff9b::7f00:1`, 6to4
 * `2002:7f00:1::`, IPv4-translated `::ffff:0:7f00:1`).
 *
 * Two opinions, either one enough to refuse: the table below (named for
 * the operator), and ipaddr.js's registry of special-purpose ranges, which
 * is kept up with IANA (documentation `3fff::/20`, SRv6 `5f00::/16`, AMT,
 * AS112, …). Parsing stays strict and our own: one spelling per address,
 * no `0x7f.1` or `2130706433`.
 */
import { harden } from '../harden.js';
import ipaddr from 'ipaddr.js';

/** Parses a textual IPv4 or IPv6 address into 4 or 16 bytes; undefined if it is neither. */
export const parseIp = (text: string): Uint8Array | undefined => {
  if (typeof text !== 'string' || text.length === 0 || text.length > 64) return undefined;
  let input = text;
  if (input.startsWith('[') && input.endsWith(']')) input = input.slice(1, -1);
  const zone = input.indexOf('%');
  if (zone !== -1) input = input.slice(0, zone);
  if (!input.includes(':')) return parseIpv4(input);
  return parseIpv6(input);
};
harden(parseIp);

const parseIpv4 = (input: string): Uint8Array | undefined => {
  const parts = input.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i += 1) {
    const p = parts[i] as string;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
};

const parseIpv6 = (input: string): Uint8Array | undefined => {
  const halves = input.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i += 1) {
      const p = parts[i] as string;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (!v4) return undefined;
        out.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  const head = groupsOf(halves[0] as string);
  const tail = halves.length === 2 ? groupsOf(halves[1] as string) : [];
  if (!head || !tail) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const groups = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
};

export interface Cidr {
  readonly bytes: Uint8Array;
  readonly prefix: number;
  readonly source: string;
}

/** Parses `a.b.c.d/n` or `x:y::/n` (a bare address means the whole address). */
export const parseCidr = (text: string): Cidr | undefined => {
  if (typeof text !== 'string') return undefined;
  const [addr = '', len, extra] = text.split('/');
  if (extra !== undefined) return undefined;
  const bytes = parseIp(addr);
  if (!bytes) return undefined;
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : /^[0-9]{1,3}$/.test(len) ? Number(len) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  return harden({ bytes, prefix, source: text });
};
harden(parseCidr);

export const inCidr = (ip: Uint8Array, cidr: Cidr): boolean => {
  if (ip.length !== cidr.bytes.length) return false;
  let bits = cidr.prefix;
  for (let i = 0; i < ip.length && bits > 0; i += 1, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((ip[i] as number) & mask) !== ((cidr.bytes[i] as number) & mask)) return false;
  }
  return true;
};
harden(inCidr);

const table = (entries: ReadonlyArray<readonly [string, string]>) =>
  entries.map(([cidr, name]) => ({ cidr: parseCidr(cidr) as Cidr, name }));

const SPECIAL_V4 = table([
  ['0.0.0.0/8', 'this network'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'shared address space (CGNAT)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (cloud metadata)'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', '6to4 relay anycast'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved (and broadcast)'],
]);

const SPECIAL_V6 = table([
  ['::/96', 'unspecified, loopback or IPv4-compatible'],
  ['64:ff9b:1::/48', 'local-use NAT64'],
  ['100::/64', 'discard'],
  ['2001::/23', 'IETF protocol assignments (Teredo, ORCHID)'],
  ['2001:db8::/32', 'documentation'],
  ['fc00::/7', 'unique local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
]);

const EMBEDS_V4 = [
  { cidr: parseCidr('::ffff:0:0/96') as Cidr, at: 12 },
  { cidr: parseCidr('::ffff:0:0:0/96') as Cidr, at: 12 },
  { cidr: parseCidr('64:ff9b::/96') as Cidr, at: 12 },
  { cidr: parseCidr('2002::/16') as Cidr, at: 2 },
];

/** ipaddr.js's name of the special-purpose range holding `ip`, or undefined for a global unicast address. */
const registryRangeOf = (ip: Uint8Array): string | undefined => {
  let range: string;
  try {
    range = ipaddr.fromByteArray(Array.from(ip)).range();
  } catch {
    return 'not an IP address';
  }
  return range === 'unicast' ? undefined : `${range} (IANA special-purpose)`;
};

/**
 * Why an address is not public (e.g. "loopback"), or undefined when it is.
 * Unparseable input is "not an IP address" (never public).
 */
export const specialRangeOf = (address: string | Uint8Array): string | undefined => {
  const ip = typeof address === 'string' ? parseIp(address) : address;
  if (!ip) return 'not an IP address';
  if (ip.length === 4) return SPECIAL_V4.find(r => inCidr(ip, r.cidr))?.name ?? registryRangeOf(ip);
  for (const { cidr, at } of EMBEDS_V4) {
    if (inCidr(ip, cidr)) {
      const inner = specialRangeOf(ip.subarray(at, at + 4));
      return inner === undefined ? undefined : `${inner} (embedded in IPv6)`;
    }
  }
  return SPECIAL_V6.find(r => inCidr(ip, r.cidr))?.name ?? registryRangeOf(ip);
};
harden(specialRangeOf);
