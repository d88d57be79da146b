/**
 * The kernel's public surface. The kernel itself is made of parts with one
 * job each, in src/kernel/ (kernel.ts there wires them and lists them).
 */
export { makeKernel, type Kernel } from './kernel/kernel.js';
export { abortable } from './kernel/effect.js';
export { admit } from './kernel/mediation.js';
export type { ApprovalHost, ApprovalRecord } from './kernel/approvals.js';
export type {
  CapabilityRecord,
  CapabilityShape,
  CapabilityState,
  KernelAuditSink,
  KernelOptions,
  KernelPowers,
  KernelTimers,
  RequestVia,
} from './kernel/types.js';
