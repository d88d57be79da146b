/**
 * The seccomp filter, interpreted instruction by instruction as the kernel
 * would run it: process creation and the listed syscalls are refused,
 * threads and everything else pass, foreign ABIs are killed.
 */
import { test } from './_prepare.js';
import { fc, testProp } from '@fast-check/ava';
import { auditArch, buildSeccompFilter, deniedSyscalls, runSeccompFilter, seccompInstructions, syscallNumber, SECCOMP_ARCHES } from '../src/isolation/seccomp.js';

const CLONE_THREAD = 0x10000;

for (const arch of SECCOMP_ARCHES) {
  const prog = seccompInstructions(arch);
  const audit = auditArch(arch) as number;
  const run = (name: string, arg0 = 0) => runSeccompFilter(prog, { nr: syscallNumber(arch, name) as number, arch: audit, arg0 });

  test(`[${arch}] attack: forking a process is refused with EPERM; creating a thread is allowed`, t => {
    t.deepEqual(run('clone', 0x11 /* SIGCHLD: fork */), { action: 'errno', errno: 1 });
    t.deepEqual(run('clone', CLONE_THREAD | 0x3d0f00), { action: 'allow' });
    t.deepEqual(run('clone3'), { action: 'errno', errno: 38 }, 'ENOSYS: the C library falls back to clone');
    if (arch === 'x64') {
      t.deepEqual(run('fork'), { action: 'errno', errno: 1 });
      t.deepEqual(run('vfork'), { action: 'errno', errno: 1 });
    }
  });

  test(`[${arch}] attack: ptrace, namespaces, mounts, kernel modules, bpf and memfd are refused with EPERM`, t => {
    for (const name of ['ptrace', 'process_vm_readv', 'unshare', 'setns', 'mount', 'init_module', 'bpf', 'memfd_create', 'execveat', 'io_uring_setup']) {
      t.deepEqual(run(name), { action: 'errno', errno: 1 }, name);
    }
  });

  test(`[${arch}] attack: a syscall under another ABI is killed`, t => {
    t.is(runSeccompFilter(prog, { nr: 0, arch: 0x40000003 /* i386 */ }).action, 'kill');
    if (arch === 'x64') t.is(runSeccompFilter(prog, { nr: 0x40000000 + 59, arch: audit }).action, 'kill', 'x32 ABI');
  });

  const denied = new Set(deniedSyscalls(arch).map(n => syscallNumber(arch, n)));
  testProp(`[${arch}] every syscall not on the list is allowed`, [fc.integer({ min: 0, max: 500 })], (t, nr) => {
    const listed = denied.has(nr) || nr === syscallNumber(arch, 'clone') || nr === syscallNumber(arch, 'clone3');
    t.is(runSeccompFilter(prog, { nr, arch: audit }).action === 'allow', !listed);
  });

  test(`[${arch}] the filter bytes are 8 per instruction`, t => {
    t.is(buildSeccompFilter(arch).length, prog.length * 8);
  });
}

test('an architecture without a table is refused with ZT_ISOLATION_UNAVAILABLE', t => {
  t.throws(() => buildSeccompFilter('mips'), { message: /^ZT_ISOLATION_UNAVAILABLE\b/ });
});
