/**
 * Policy files as text: YAML (1.2, core schema) or JSON, parsed with
 * positions so every problem can be reported at its line and column.
 *
 * Invariants:
 * - parsing is strict: duplicate keys, unknown tags, anchors used more than
 *   a few dozen times (alias bombs), documents over 4 MiB and multiple YAML
 *   documents in one file are problems, never silently resolved;
 * - JSON files must be JSON (`JSON.parse` must accept them), even though
 *   the YAML parser is what locates problems in them;
 * - whatever the text, the result is a list of problems or a document:
 *   nothing here throws anything but ZT_POLICY_INVALID.
 */
import { harden } from '../harden.js';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node as YamlNode } from 'yaml';
import { ZtError } from '../errors.js';
import { makePolicy, type MakePolicyOptions } from './engine.js';
import { rejectPolicy, sharedPolicyValidator } from './validate.js';
import type { Policy, PolicyProblem } from './types.js';

export const MAX_POLICY_TEXT = 4 * 1024 * 1024;
const MAX_ALIASES = 64;

export interface ParsedPolicyText {
  /** The parsed value, when the text parsed at all (it may still be an invalid policy). */
  readonly document?: unknown;
  /** Syntax problems, located. */
  readonly problems: readonly PolicyProblem[];
  /** Line and column (1-based) of the value at a JSON pointer, or of its nearest existing ancestor. */
  locate(pointer: string): { line: number; column: number } | undefined;
}

const unescape = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');

const nodeStart = (node: unknown): number | undefined => {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? range[0] : undefined;
};

/** Parses policy text. `format` defaults to YAML (which also reads JSON). */
export const parsePolicyText = (text: string, options: { format?: 'yaml' | 'json' } = {}): ParsedPolicyText => {
  const lineCounter = new LineCounter();
  const at = (offset: number | undefined) => {
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  if (typeof text !== 'string') {
    return harden({ problems: [{ pointer: '', message: 'the policy text is not a string' }], locate: () => undefined });
  }
  if (text.length > MAX_POLICY_TEXT) {
    return harden({ problems: [{ pointer: '', message: `the policy text is larger than ${MAX_POLICY_TEXT} characters` }], locate: () => undefined });
  }
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, strict: true, stringKeys: true, prettyErrors: false, version: '1.2' }) as Document.Parsed[];
  } catch {
    return harden({ problems: [{ pointer: '', message: 'the policy text could not be parsed' }], locate: () => undefined });
  }
  if (!Array.isArray(docs)) docs = [];
  const problems: PolicyProblem[] = [];
  const doc = docs[0];
  if (docs.length > 1) problems.push({ pointer: '', message: 'the file holds more than one YAML document', ...at(nodeStart(docs[1]?.contents)) });
  for (const d of docs) {
    for (const e of [...d.errors, ...d.warnings]) {
      problems.push({ pointer: '', message: `${e.name === 'YAMLWarning' ? 'YAML warning' : 'syntax error'}: ${e.message.split('\n')[0] ?? e.code}`, ...at(e.pos[0]) });
    }
  }
  const locate = (pointer: string) => {
    if (!doc) return undefined;
    let node: unknown = doc.contents;
    let best = nodeStart(node);
    for (const raw of pointer.split('/').slice(1)) {
      const seg = unescape(raw);
      if (isMap(node)) {
        const pair = node.items.find(p => isPair(p) && isScalar(p.key) && String(p.key.value) === seg);
        if (!pair) break;
        best = nodeStart(pair.key) ?? best;
        node = pair.value;
        const start = nodeStart(node);
        // A scalar value on the key's line: point at the value; else keep the key.
        if (start !== undefined && isScalar(node)) best = start;
      } else if (isSeq(node)) {
        const item = node.items[Number(seg)] as YamlNode | undefined;
        if (!/^\d+$/.test(seg) || item === undefined) break;
        node = item;
        best = nodeStart(item) ?? best;
      } else {
        break;
      }
    }
    return at(best);
  };
  if (problems.length > 0 || !doc) {
    if (!doc) problems.push({ pointer: '', message: 'the policy text is empty' });
    return harden({ problems, locate });
  }
  let document: unknown;
  try {
    document = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    problems.push({ pointer: '', message: `the document cannot be built: ${err instanceof Error ? err.message.split('\n')[0] : 'malformed'}` });
    return harden({ problems, locate });
  }
  if (options.format === 'json') {
    try {
      JSON.parse(text);
    } catch (err) {
      const m = /position (\d+)/.exec(err instanceof Error ? err.message : '');
      problems.push({ pointer: '', message: 'not valid JSON (YAML syntax in a .json file?)', ...(at(m ? Number(m[1]) : 0) ?? {}) });
      return harden({ problems, locate });
    }
  }
  return harden({ document, problems, locate });
};
harden(parsePolicyText);

/**
 * Parses, validates and compiles policy text. Throws ZT_POLICY_INVALID with
 * every problem located by JSON pointer, line and column.
 */
export const loadPolicyText = (
  text: string,
  digest: (text: string) => string,
  canonicalize: (value: unknown) => string,
  options: MakePolicyOptions & { format?: 'yaml' | 'json' } = {},
): Policy => {
  const parsed = parsePolicyText(text, options.format ? { format: options.format } : {});
  if (parsed.problems.length > 0) rejectPolicy(parsed.problems);
  const validator = options.validator ?? sharedPolicyValidator();
  const problems = validator.problems(parsed.document);
  if (problems.length > 0) rejectPolicy(problems.map(p => ({ ...p, ...parsed.locate(p.pointer) })));
  try {
    return makePolicy(parsed.document, digest, canonicalize, { validator });
  } catch (err) {
    // Problems found only while compiling (delegation targets) are located too.
    const found = err instanceof ZtError && err.code === 'ZT_POLICY_INVALID' ? (err.details as { problems?: readonly PolicyProblem[] } | undefined)?.problems : undefined;
    if (found === undefined) throw err;
    return rejectPolicy(found.map(p => ({ ...p, ...parsed.locate(p.pointer) })));
  }
};
harden(loadPolicyText);
