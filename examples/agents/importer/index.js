// Imports a builtin: refused when the module graph is loaded, before any code runs.
import { readFileSync } from 'node:fs';

export default function main() {
  return readFileSync('/etc/passwd', 'utf8');
}
