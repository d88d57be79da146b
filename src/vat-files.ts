/**
 * Where the vats' entry files are: `dist/vats/`, beside `dist/src/`. The
 * same relative step finds it from this module (in `dist/src/`) and from
 * the kernel vat's bundle (in `dist/vats/`, where this module is inlined),
 * so every place that starts a vat asks here.
 */
import { fileURLToPath } from 'node:url';
import { harden } from './harden.js';

const VATS_DIR = new URL('../vats/', import.meta.url);

/** The URL of a file in `dist/vats/`. */
export const vatFileUrl = (name: string): URL => new URL(name, VATS_DIR);
harden(vatFileUrl);

/** The absolute path of `dist/`. */
export const distDir = (): string => fileURLToPath(new URL('../', VATS_DIR)).replace(/\/$/, '');
harden(distDir);
