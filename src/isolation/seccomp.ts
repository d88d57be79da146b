/**
 * The seccomp filter of a process vat, as a classic BPF program that
 * bubblewrap installs (`bwrap --seccomp FD`) right before it executes Node.
 *
 * Invariant: a vat can create threads but never a process. Every syscall
 * that starts a process (`fork`, `vfork`, `clone` without `CLONE_THREAD`)
 * or runs a program from a descriptor (`execveat`), reaches into another process
 * (`ptrace`, `process_vm_*`, `pidfd_getfd`, `kcmp`), enters or makes
 * namespaces (`unshare`, `setns`), changes mounts, loads kernel code or
 * keys, or opens rarely needed kernel attack surface (`bpf`,
 * `perf_event_open`, `userfaultfd`, `io_uring_*`, handle-based opens,
 * `memfd_*`) fails with EPERM. `clone3` fails with ENOSYS so that the C
 * library falls back to `clone`, whose flags a BPF program can read (the
 * flags of `clone3` are behind a pointer it cannot follow).
 *
 * `execve` stays allowed: bubblewrap installs the filter before it executes
 * Node, so the filter must let that one `execve` through, and a classic BPF
 * filter keeps no state to allow it only once. An `execve` replaces the
 * vat's own process (it creates none); it keeps the filter, the namespaces
 * and the rlimits, and the only programs in the sandbox's file system are
 * Node and its dynamic loader, with nowhere to write another (no writable
 * mount, `memfd_create` refused).
 *
 * Threat: a complete escape from the agent's Compartment *and* from Node's
 * permission model (a V8 or Node bug) still cannot start a process, attach
 * to the kernel, or make a user namespace to widen the kernel's attack
 * surface. The filter is deny-listed on top of the namespaces, not the only
 * wall: the file system and the network are closed by bubblewrap.
 *
 * The program checks the architecture first and kills the process on any
 * other ABI (on x86-64 that includes the x32 ABI, whose numbers carry bit
 * 30), so a syscall number cannot be reinterpreted under another table.
 * Pure: returns bytes; the adapter hands them to bubblewrap.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';

/** `struct sock_filter` opcodes (linux/filter.h, linux/bpf_common.h). */
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;

/** `struct seccomp_data` offsets: nr (int), arch (u32), ip (u64), args[6] (u64). */
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const OFFSET_ARG0_LOW = 16; // little-endian: the low 32 bits of args[0]

const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const EPERM = 1;
const ENOSYS = 38;
const CLONE_THREAD = 0x00010000;
const X32_SYSCALL_BIT = 0x40000000;

interface SyscallTable {
  readonly audit: number;
  readonly clone: number;
  readonly clone3: number;
  readonly x32Bit: boolean;
  readonly denied: Readonly<Record<string, number>>;
}

/** Syscall numbers from the kernel's uapi headers (asm/unistd_64.h; asm-generic/unistd.h for arm64). */
const TABLES: Readonly<Record<string, SyscallTable>> = harden({
  x64: {
    audit: 0xc000003e, // AUDIT_ARCH_X86_64
    clone: 56,
    clone3: 435,
    x32Bit: true,
    denied: {
      fork: 57, vfork: 58, execveat: 322,
      ptrace: 101, process_vm_readv: 310, process_vm_writev: 311, pidfd_getfd: 438, kcmp: 312, process_madvise: 440,
      unshare: 272, setns: 308,
      mount: 165, umount2: 166, pivot_root: 155, chroot: 161, mount_setattr: 442,
      fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, open_tree: 428, move_mount: 429,
      init_module: 175, finit_module: 313, delete_module: 176, kexec_load: 246, kexec_file_load: 320,
      bpf: 321, perf_event_open: 298, userfaultfd: 323,
      keyctl: 250, add_key: 248, request_key: 249,
      io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427,
      open_by_handle_at: 304, name_to_handle_at: 303,
      memfd_create: 319, memfd_secret: 447,
      swapon: 167, swapoff: 168, reboot: 169, acct: 163, quotactl: 179, syslog: 103, personality: 135,
    },
  },
  arm64: {
    audit: 0xc00000b7, // AUDIT_ARCH_AARCH64
    clone: 220,
    clone3: 435,
    x32Bit: false,
    denied: {
      execveat: 281,
      ptrace: 117, process_vm_readv: 270, process_vm_writev: 271, pidfd_getfd: 438, kcmp: 272, process_madvise: 440,
      unshare: 97, setns: 268,
      mount: 40, umount2: 39, pivot_root: 41, chroot: 51, mount_setattr: 442,
      fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, open_tree: 428, move_mount: 429,
      init_module: 105, finit_module: 273, delete_module: 106, kexec_load: 104, kexec_file_load: 294,
      bpf: 280, perf_event_open: 241, userfaultfd: 282,
      keyctl: 219, add_key: 217, request_key: 218,
      io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427,
      open_by_handle_at: 265, name_to_handle_at: 264,
      memfd_create: 279, memfd_secret: 447,
      swapon: 224, swapoff: 225, reboot: 142, acct: 89, quotactl: 60, syslog: 116, personality: 92,
    },
  },
});

/** The Node `process.arch` values this filter supports. */
export const SECCOMP_ARCHES: readonly string[] = harden(Object.keys(TABLES));

export const isSeccompArch = (arch: string): boolean => Object.hasOwn(TABLES, arch);
harden(isSeccompArch);

/** The names of the syscalls the filter refuses with EPERM on `arch` (for docs and `ztaas doctor`). */
export const deniedSyscalls = (arch: string): readonly string[] => {
  const table = TABLES[arch];
  if (!table) throw new ZtError('ZT_ISOLATION_UNAVAILABLE', `no seccomp filter for architecture ${arch}`, { missing: ['seccomp-arch'] });
  return harden([...Object.keys(table.denied), 'clone (without CLONE_THREAD)', 'clone3 (ENOSYS)']);
};
harden(deniedSyscalls);

interface Insn {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

const insn = (code: number, k: number, jt = 0, jf = 0): Insn => ({ code, jt, jf, k: k >>> 0 });

/** The filter as `struct sock_filter` instructions (exported for tests that interpret it). */
export const seccompInstructions = (arch: string): readonly Insn[] => {
  const table = TABLES[arch];
  if (!table) throw new ZtError('ZT_ISOLATION_UNAVAILABLE', `no seccomp filter for architecture ${arch}`, { missing: ['seccomp-arch'] });
  const errno = (e: number) => insn(RET_K, SECCOMP_RET_ERRNO | e);
  const prog: Insn[] = [
    insn(LD_W_ABS, OFFSET_ARCH),
    insn(JEQ_K, table.audit, 1, 0),
    insn(RET_K, SECCOMP_RET_KILL_PROCESS),
    insn(LD_W_ABS, OFFSET_NR),
  ];
  if (table.x32Bit) prog.push(insn(JGE_K, X32_SYSCALL_BIT, 0, 1), insn(RET_K, SECCOMP_RET_KILL_PROCESS));
  // clone: threads (CLONE_THREAD set) pass, processes do not.
  prog.push(
    insn(JEQ_K, table.clone, 0, 4),
    insn(LD_W_ABS, OFFSET_ARG0_LOW),
    insn(JSET_K, CLONE_THREAD, 0, 1),
    insn(RET_K, SECCOMP_RET_ALLOW),
    errno(EPERM),
  );
  prog.push(insn(JEQ_K, table.clone3, 0, 1), errno(ENOSYS));
  for (const nr of Object.values(table.denied)) prog.push(insn(JEQ_K, nr, 0, 1), errno(EPERM));
  prog.push(insn(RET_K, SECCOMP_RET_ALLOW));
  return harden(prog.map(i => harden(i)));
};
harden(seccompInstructions);

/** The filter as the bytes `bwrap --seccomp FD` reads (8 bytes per instruction, little-endian). */
export const buildSeccompFilter = (arch: string): Uint8Array => {
  const prog = seccompInstructions(arch);
  const bytes = new Uint8Array(prog.length * 8);
  const view = new DataView(bytes.buffer);
  prog.forEach((i, n) => {
    view.setUint16(n * 8, i.code, true);
    view.setUint8(n * 8 + 2, i.jt);
    view.setUint8(n * 8 + 3, i.jf);
    view.setUint32(n * 8 + 4, i.k, true);
  });
  return bytes;
};
harden(buildSeccompFilter);

/**
 * Runs the filter on one syscall, as the kernel would (only the opcodes the
 * filter uses). For tests and `ztaas doctor --explain`; returns the action.
 */
export const runSeccompFilter = (
  prog: readonly Insn[],
  data: { readonly nr: number; readonly arch: number; readonly arg0?: number },
): { readonly action: 'allow' | 'errno' | 'kill'; readonly errno?: number } => {
  let acc = 0;
  let pc = 0;
  for (let steps = 0; steps < 4096 && pc < prog.length; steps += 1) {
    const i = prog[pc] as Insn;
    switch (i.code) {
      case LD_W_ABS:
        acc = i.k === OFFSET_NR ? data.nr : i.k === OFFSET_ARCH ? data.arch : i.k === OFFSET_ARG0_LOW ? (data.arg0 ?? 0) >>> 0 : NaN;
        if (Number.isNaN(acc)) throw new ZtError('ZT_BAD_ARGUMENT', `unexpected load offset ${i.k}`);
        pc += 1;
        break;
      case JEQ_K:
        pc += 1 + ((acc >>> 0) === i.k ? i.jt : i.jf);
        break;
      case JGE_K:
        pc += 1 + ((acc >>> 0) >= i.k ? i.jt : i.jf);
        break;
      case JSET_K:
        pc += 1 + ((acc & i.k) !== 0 ? i.jt : i.jf);
        break;
      case RET_K: {
        const action = i.k & 0xffff0000;
        if (action === SECCOMP_RET_ALLOW) return harden({ action: 'allow' });
        if (action === SECCOMP_RET_ERRNO) return harden({ action: 'errno', errno: i.k & 0xffff });
        return harden({ action: 'kill' });
      }
      default:
        throw new ZtError('ZT_BAD_ARGUMENT', `unexpected opcode ${i.code}`);
    }
  }
  throw new ZtError('ZT_BAD_ARGUMENT', 'the filter ran off its end');
};
harden(runSeccompFilter);

/** Syscall number of `name` in the table of `arch` (tests). */
export const syscallNumber = (arch: string, name: string): number | undefined => {
  const table = TABLES[arch];
  if (!table) return undefined;
  if (name === 'clone') return table.clone;
  if (name === 'clone3') return table.clone3;
  return table.denied[name];
};
harden(syscallNumber);

export const auditArch = (arch: string): number | undefined => TABLES[arch]?.audit;
harden(auditArch);
