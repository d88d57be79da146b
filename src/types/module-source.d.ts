// The package's own declarations pull in Babel's untyped sources; this is
// the part of its surface ZT-AAS uses (mapped in tsconfig.json `paths`).
export declare class ModuleSource {
  constructor(source: string, location?: string);
  readonly imports: readonly string[];
  readonly exports: readonly string[];
  readonly reexports: readonly string[];
}
