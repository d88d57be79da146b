/**
 * JSON Schema → TypeScript, bounded, for schemas an upstream server wrote.
 *
 * Threat: an MCP server is untrusted. Its tool definitions end up in text a
 * model reads and may compile (`describeCapabilities`). A hostile
 * definition could try to break out of a doc comment (`*\/ declare const
 * x: any; /*`), out of a string or property name (quotes, newlines, line
 * separators), or exhaust the kernel with a schema nested ten thousand
 * levels deep or with a million properties.
 *
 * Invariants:
 * - Output is built only from fixed TypeScript syntax, identifiers that
 *   match IDENTIFIER, JSON string literals (`JSON.stringify`, which escapes
 *   quotes, backslashes, control characters and lone surrogates) and
 *   finite number literals. Text of the schema's own (descriptions, titles)
 *   appears only inside doc comments, through `docComment`, which removes
 *   line terminators and control characters and breaks every `*\/`.
 * - Work is bounded whatever the input: at most SCHEMA_LIMITS.depth levels
 *   are followed (deeper ones become `unknown`), at most `nodes` schema
 *   nodes are visited per conversion, at most `members` properties, union
 *   members or enum values are taken per node, and text is cut. Nothing
 *   recurses on the input past those bounds, so no input can overflow the
 *   stack.
 * - `boundSchema` makes the plain, bounded copy of a schema that is handed
 *   on (to the operator, or to an agent in a description) under the same
 *   bounds: what is past them is replaced by `{}` (any value) and the copy
 *   says so (`$comment`).
 *
 * Supported: `type` (one or a list), `enum`, `const`, objects (`properties`,
 * `required`, `additionalProperties`), arrays (`items`, `prefixItems`),
 * `anyOf`/`oneOf` (unions), `allOf` (intersections), `true`/`{}`
 * (`unknown`), `false`/`{ not: {} }` (`never`). Anything else (`$ref`,
 * `if`/`then`, formats, patterns) is `unknown` or left to the schema.
 */
import { harden } from './harden.js';

export const SCHEMA_LIMITS = harden({
  /** Levels of nested schemas followed. */
  depth: 8,
  /** Schema nodes visited per conversion. */
  nodes: 2000,
  /** Properties, union members or enum values taken from one node. */
  members: 128,
  /** Characters of one description kept in a doc comment. */
  docText: 400,
  /** Levels of nested objects or arrays kept by `boundSchema`. */
  copyDepth: 24,
  /** Values kept by `boundSchema`. */
  copyNodes: 8000,
  /** Characters of one string (or key) kept by `boundSchema`. */
  copyText: 2000,
});

export const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Reserved words: not usable as a bare binding name (property names may be, but quoting them costs nothing). */
export const RESERVED_WORDS: ReadonlySet<string> = new Set(
  'break case catch class const continue debugger default delete do else enum export extends false finally for function if import in instanceof new null return super switch this throw true try typeof var void while with yield let static implements interface package private protected public await any boolean never number string symbol unknown object undefined declare type namespace module readonly keyof infer is as of get set constructor'.split(
    ' ',
  ),
);

const isRecord = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/** A property key: bare when it is a plain identifier (reserved words included: they are valid property names), else a JSON string literal. */
export const propertyKey = (name: string): string => (IDENTIFIER.test(name) ? name : JSON.stringify(toWellFormed(name)));
harden(propertyKey);

/** Lone surrogates replaced by U+FFFD. */
const toWellFormed = (s: string): string => s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');

/**
 * Text made safe to sit inside a `/** … *\/` comment, on one line: control
 * characters and line terminators become spaces, every `*\/` is broken
 * (`*\\/`), and it is cut at `max` characters.
 */
export const commentText = (text: string, max: number = SCHEMA_LIMITS.docText): string => {
  let s = toWellFormed(text.length > max * 2 ? text.slice(0, max * 2) : text).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
  s = s.replace(/\s+/g, ' ').trim();
  if (s.length > max) s = `${s.slice(0, max - 1)}…`;
  // A backslash between `*` and `/` (applied after the cut, so it cannot be cut off).
  return s.replace(/\*\//g, '*\\/');
};
harden(commentText);

/** A one-line doc comment for `text` (empty when there is nothing to say), indented by `indent`. */
export const docComment = (text: unknown, indent: string): string => {
  if (typeof text !== 'string') return '';
  const safe = commentText(text);
  return safe === '' ? '' : `${indent}/** ${safe} */\n`;
};
harden(docComment);

const literal = (value: unknown): string | undefined => {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(toWellFormed(value.length > SCHEMA_LIMITS.copyText ? value.slice(0, SCHEMA_LIMITS.copyText) : value));
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number' && Number.isFinite(value)) return value < 0 ? `-${String(-value)}` : String(value);
  return undefined;
};

/** Index of the bracket closing the one at `start` (string literals skipped), or -1. */
const closingIndex = (t: string, start: number): number => {
  let level = 0;
  let inString = false;
  for (let i = start; i < t.length; i += 1) {
    const c = t[i];
    if (inString) {
      if (c === '\\') i += 1;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '(' || c === '[' || c === '{') level += 1;
    else if (c === ')' || c === ']' || c === '}') {
      level -= 1;
      if (level === 0) return i;
    }
  }
  return -1;
};

/** A type that needs no parentheses as a member of a union or intersection, or before `[]`. */
const isAtom = (t: string): boolean => {
  const body = t.replace(/(\[\])+$/, '');
  if (/^[A-Za-z0-9_$.-]+$/.test(body) || body === 'Record<string, unknown>') return true;
  if (/^"(?:[^"\\]|\\.)*"$/.test(body)) return true;
  return (body.startsWith('(') || body.startsWith('{') || body.startsWith('[')) && closingIndex(body, 0) === body.length - 1;
};

const wrap = (t: string): string => (isAtom(t) ? t : `(${t})`);

const union = (members: readonly string[]): string => {
  const unique = [...new Set(members)];
  if (unique.includes('unknown')) return 'unknown';
  const kept = unique.filter(m => m !== 'never');
  if (kept.length === 0) return 'never';
  return kept.length === 1 ? (kept[0] as string) : kept.map(wrap).join(' | ');
};

export interface ToTypeOptions {
  /** Indentation of the first line of the type (properties are indented one step more). */
  readonly indent?: string;
  /** Doc comments from `description` on properties. Default true. */
  readonly docs?: boolean;
}

/**
 * The TypeScript type a JSON Schema describes, bounded (see the module
 * header). Total: any input yields a type; what cannot be described is
 * `unknown`.
 */
export const schemaToTs = (schema: unknown, options: ToTypeOptions = {}): string => {
  let budget = SCHEMA_LIMITS.nodes;
  const docs = options.docs ?? true;
  const convert = (node: unknown, depth: number, indent: string): string => {
    budget -= 1;
    if (budget < 0 || depth > SCHEMA_LIMITS.depth) return 'unknown';
    if (node === true) return 'unknown';
    if (node === false) return 'never';
    if (!isRecord(node)) return 'unknown';
    const next = (n: unknown) => convert(n, depth + 1, indent);
    if (isRecord(node.not) && Object.keys(node.not).length === 0) return 'never';
    if (Object.hasOwn(node, 'const')) return literal(node.const) ?? 'unknown';
    if (Array.isArray(node.enum)) {
      const values = node.enum.slice(0, SCHEMA_LIMITS.members).map(literal);
      if (node.enum.length > SCHEMA_LIMITS.members || values.some(v => v === undefined)) return 'unknown';
      return union(values as string[]);
    }
    const parts: string[] = [];
    for (const key of ['anyOf', 'oneOf'] as const) {
      const list = node[key];
      if (Array.isArray(list)) {
        if (list.length > SCHEMA_LIMITS.members) return 'unknown';
        parts.push(wrap(union(list.map(next))));
      }
    }
    if (Array.isArray(node.allOf)) {
      if (node.allOf.length > SCHEMA_LIMITS.members) return 'unknown';
      for (const member of node.allOf) {
        const t = next(member);
        if (t !== 'unknown') parts.push(wrap(t));
      }
    }
    const typed = typeOf(node, depth, indent);
    if (typed !== undefined) parts.push(wrap(typed));
    if (parts.length === 0) return 'unknown';
    if (parts.includes('never')) return 'never';
    return parts.length === 1 ? unwrap(parts[0] as string) : parts.join(' & ');
  };

  const unwrap = (t: string): string => (t.startsWith('(') && closingIndex(t, 0) === t.length - 1 ? t.slice(1, -1) : t);

  /** The type from `type` (and, for objects and arrays, their members); undefined when `type` says nothing. */
  const typeOf = (node: Record<string, unknown>, depth: number, indent: string): string | undefined => {
    const declared = Array.isArray(node.type) ? node.type.slice(0, 8) : node.type === undefined ? [] : [node.type];
    const implied = declared.length === 0 ? [isRecord(node.properties) ? 'object' : node.items !== undefined || node.prefixItems !== undefined ? 'array' : undefined].filter(x => x !== undefined) : declared;
    if (implied.length === 0) return undefined;
    const members = implied.map(type => {
      switch (type) {
        case 'string':
          return 'string';
        case 'number':
        case 'integer':
          return 'number';
        case 'boolean':
          return 'boolean';
        case 'null':
          return 'null';
        case 'object':
          return objectType(node, depth, indent);
        case 'array':
          return arrayType(node, depth, indent);
        default:
          return 'unknown';
      }
    });
    return union(members);
  };

  const objectType = (node: Record<string, unknown>, depth: number, indent: string): string => {
    const properties = isRecord(node.properties) ? Object.keys(node.properties) : [];
    const required = new Set(Array.isArray(node.required) ? node.required.slice(0, SCHEMA_LIMITS.members * 4).filter(r => typeof r === 'string') : []);
    const extra = node.additionalProperties;
    const inner = `${indent}  `;
    const lines: string[] = [];
    for (const name of properties.slice(0, SCHEMA_LIMITS.members)) {
      if (name === '__proto__') continue;
      const child = (node.properties as Record<string, unknown>)[name];
      const t = convert(child, depth + 1, inner);
      const doc = docs && isRecord(child) ? docComment(child.description, inner) : '';
      lines.push(`${doc}${inner}${propertyKey(name)}${required.has(name) ? '' : '?'}: ${t};\n`);
    }
    const more = properties.length > SCHEMA_LIMITS.members;
    if (more || extra === undefined || extra === true) {
      if (lines.length === 0) return 'Record<string, unknown>';
      lines.push(`${inner}[key: string]: unknown;\n`);
    } else if (isRecord(extra)) {
      const t = convert(extra, depth + 1, inner);
      // An index signature must admit every named property's type.
      lines.push(`${inner}[key: string]: ${lines.length === 0 ? t : 'unknown'};\n`);
    }
    if (lines.length === 0) return '{}';
    return `{\n${lines.join('')}${indent}}`;
  };

  const arrayType = (node: Record<string, unknown>, depth: number, indent: string): string => {
    if (Array.isArray(node.prefixItems)) {
      if (node.prefixItems.length > SCHEMA_LIMITS.members) return 'unknown[]';
      const min = typeof node.minItems === 'number' ? node.minItems : 0;
      const items = node.prefixItems.map((item, i) => (i < min ? convert(item, depth + 1, indent) : `${wrap(convert(item, depth + 1, indent))}?`));
      const rest = node.items === false ? '' : `...${wrap(node.items === undefined ? 'unknown' : convert(node.items, depth + 1, indent))}[]`;
      return `[${[...items, ...(rest ? [rest] : [])].join(', ')}]`;
    }
    if (node.items === undefined || node.items === true) return 'unknown[]';
    return `${wrap(convert(node.items, depth + 1, indent))}[]`;
  };

  return convert(schema, 0, options.indent ?? '');
};
harden(schemaToTs);

/**
 * A plain, bounded copy of a JSON value (a schema): objects nested deeper
 * than `copyDepth` and values past `copyNodes` become `{}`, strings and keys
 * are cut at `copyText`, lone surrogates replaced, `__proto__` keys and
 * anything that is not JSON (functions, non-finite numbers) left out. Says
 * `$comment: 'bounded'` at the top when it cut anything.
 */
export const boundSchema = (schema: unknown): unknown => {
  let budget = SCHEMA_LIMITS.copyNodes;
  let cut = false;
  const text = (s: string) => {
    if (s.length <= SCHEMA_LIMITS.copyText) return toWellFormed(s);
    cut = true;
    return toWellFormed(s.slice(0, SCHEMA_LIMITS.copyText));
  };
  const copy = (value: unknown, depth: number): unknown => {
    budget -= 1;
    if (value === null || typeof value === 'boolean') return value;
    if (typeof value === 'number') return Number.isFinite(value) ? value : null;
    if (typeof value === 'string') return text(value);
    if (typeof value !== 'object') return null;
    if (budget < 0 || depth >= SCHEMA_LIMITS.copyDepth) {
      cut = true;
      return {};
    }
    if (Array.isArray(value)) {
      if (value.length > SCHEMA_LIMITS.members * 8) cut = true;
      return value.slice(0, SCHEMA_LIMITS.members * 8).map(v => copy(v, depth + 1));
    }
    const out: Record<string, unknown> = {};
    const keys = Object.keys(value);
    if (keys.length > SCHEMA_LIMITS.members * 8) cut = true;
    for (const key of keys.slice(0, SCHEMA_LIMITS.members * 8)) {
      if (key === '__proto__') continue;
      const v = (value as Record<string, unknown>)[key];
      if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint' || v === undefined) continue;
      out[text(key)] = copy(v, depth + 1);
    }
    return out;
  };
  const result = copy(schema, 0);
  if (cut && isRecord(result)) return harden({ $comment: 'bounded: parts past the description limits are left open', ...result });
  return harden(result);
};
harden(boundSchema);
