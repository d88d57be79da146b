// Type declarations for Endo packages that ship none.

declare module '@endo/ses-ava' {
  import type { TestFn } from 'ava';
  export function wrapTest<T extends TestFn<any>>(test: T): T;
}

declare module '@endo/captp' {
  export type CapTPMessage = Record<string, unknown>;
  export interface CapTPOptions {
    onReject?: (err: unknown) => void;
    epoch?: number;
    gcImports?: boolean;
  }
  export interface CapTP {
    dispatch(message: CapTPMessage): boolean;
    getBootstrap(): Promise<any>;
    abort(reason?: unknown): void;
    getStats(): unknown;
  }
  export function makeCapTP(
    ourId: string,
    send: (message: CapTPMessage) => void,
    bootstrap?: unknown,
    opts?: CapTPOptions,
  ): CapTP;
  export function makeLoopback(ourId: string): {
    makeFar<T>(x: T): Promise<T>;
    makeNear<T>(x: T): Promise<T>;
    makeTrapHandler: unknown;
    Trap: unknown;
    isOnlyNear: unknown;
  };
  export { E } from '@endo/far';
}
