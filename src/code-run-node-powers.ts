/**
 * The Node powers of code mode (code-run.ts): Babel's parser to read the
 * submitted source's shape, and amaro (Node's own TypeScript stripper, swc
 * compiled to WebAssembly) to erase types. The same amaro version on Node
 * 20, 22 and 24, so every line strips alike (Node's built-in
 * `module.stripTypeScriptTypes` exists on 22.13+ only). Both are loaded at
 * the first code run, not when the kernel starts (amaro takes about 130 ms
 * to load, 20 ms for its first strip).
 *
 * Positions are 1-based lines and columns, in UTF-16 units, of the text given.
 */
import { harden } from './harden.js';
import type { CodePowers, CodeProblem, CodeShape } from './code-run.js';

interface BabelNode {
  readonly type: string;
  readonly loc?: { readonly start: { readonly line: number; readonly column: number } };
  readonly [key: string]: unknown;
}

/** Keys of a Babel node that never hold code. */
const SKIPPED_KEYS: ReadonlySet<string> = new Set(['loc', 'start', 'end', 'extra', 'range', 'comments', 'leadingComments', 'trailingComments', 'innerComments']);

const isNode = (x: unknown): x is BabelNode => x !== null && typeof x === 'object' && typeof (x as { type?: unknown }).type === 'string';

/** The first `import(...)` in the tree, depth first in source order; iterative, so deep nesting cannot overflow the stack. */
const findDynamicImport = (root: BabelNode): BabelNode | undefined => {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i -= 1) stack.push(value[i]);
      continue;
    }
    if (!isNode(value)) continue;
    if (value.type === 'Import' || value.type === 'ImportExpression') return value;
    const keys = Object.keys(value).filter(key => !SKIPPED_KEYS.has(key));
    for (let i = keys.length - 1; i >= 0; i -= 1) {
      const child = value[keys[i]!];
      if (child !== null && typeof child === 'object') stack.push(child);
    }
  }
  return undefined;
};

const positionOf = (node: BabelNode) => (node.loc ? { line: node.loc.start.line, column: node.loc.start.column + 1 } : { line: 1, column: 1 });

const analyze = async (text: string, typescript: boolean) => {
  const { parse } = await import('@babel/parser');
  let program: { body: BabelNode[] };
  try {
    ({ program } = parse(text, {
      sourceType: 'module',
      allowReturnOutsideFunction: true,
      plugins: typescript ? ['typescript'] : [],
    }) as unknown as { program: { body: BabelNode[] } });
  } catch (err) {
    const { loc, message } = err as { loc?: { line: number; column: number }; message?: unknown };
    const text = String(message ?? 'the code could not be parsed').replace(/\s*\(\d+:\d+\)\s*$/, '');
    const problem: CodeProblem = loc ? { message: text, line: loc.line, column: loc.column + 1 } : { message: text };
    return harden({ ok: false as const, problem });
  }
  let defaultExport = false;
  let namedExports = false;
  let firstImport: BabelNode | undefined;
  for (const statement of program.body) {
    if (statement.type === 'ImportDeclaration' || statement.type === 'TSImportEqualsDeclaration') firstImport ??= statement;
    else if (statement.type === 'ExportDefaultDeclaration') defaultExport = true;
    else if (statement.type === 'ExportNamedDeclaration' || statement.type === 'ExportAllDeclaration' || statement.type === 'TSExportAssignment') {
      namedExports = true;
      if ((statement as { source?: unknown }).source) firstImport ??= statement;
    }
  }
  firstImport ??= findDynamicImport(program as unknown as BabelNode);
  const shape: CodeShape = { defaultExport, namedExports, ...(firstImport ? { firstImport: positionOf(firstImport) } : {}) };
  return harden({ ok: true as const, shape });
};

interface AmaroError {
  readonly message?: unknown;
  readonly startLine?: unknown;
  readonly startColumn?: unknown;
}

const stripTypes = async (text: string) => {
  const amaro = (await import('amaro')) as unknown as { transformSync?: unknown; default?: { transformSync: unknown } };
  const transformSync = (amaro.default?.transformSync ?? amaro.transformSync) as (code: string, options: { mode: 'strip-only' }) => { code: string };
  try {
    return harden({ ok: true as const, code: transformSync(text, { mode: 'strip-only' }).code });
  } catch (err) {
    const { message, startLine, startColumn } = (err ?? {}) as AmaroError;
    const line = typeof startLine === 'number' && startLine > 0 ? startLine : undefined;
    const problem: CodeProblem = {
      message: typeof message === 'string' ? message : 'the TypeScript could not be stripped',
      ...(line === undefined ? {} : { line, ...(typeof startColumn === 'number' && startColumn >= 0 ? { column: startColumn + 1 } : {}) }),
    };
    return harden({ ok: false as const, problem });
  }
};

export const makeNodeCodePowers = (): CodePowers => harden({ analyze, stripTypes });
harden(makeNodeCodePowers);
