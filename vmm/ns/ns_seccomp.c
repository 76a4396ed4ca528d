/* The ns backend's seccomp filter, written as BPF by hand (no libseccomp).
 *
 * Guest root has every capability inside its user namespace, which is what
 * lets it mount, run a netns and so on; this filter removes the calls whose
 * effect or attack surface is not confined by those namespaces (the same
 * idea as bubblewrap and the container runtimes' default profiles). Refused
 * calls fail with EPERM so programs see an ordinary "not permitted". */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "vmm/ns/ns.h"

#define X32_SYSCALL_BIT 0x40000000u

struct refusal {
	int nr;
	const char *name;
	const char *why;
};

/* One table: every refused call and the reason. */
static const struct refusal refused[] = {
	/* Kernel code loading: a module runs with full host privileges. */
	{ SYS_init_module, "init_module", "load kernel code" },
	{ SYS_finit_module, "finit_module", "load kernel code" },
	{ SYS_delete_module, "delete_module", "unload host modules" },
	{ SYS_kexec_load, "kexec_load", "replace the host kernel" },
	{ SYS_kexec_file_load, "kexec_file_load", "replace the host kernel" },
	/* Host-wide state not covered by any namespace. */
	{ SYS_reboot, "reboot", "host power state (in a pid ns it only kills init; refused anyway)" },
	{ SYS_swapon, "swapon", "host swap configuration" },
	{ SYS_swapoff, "swapoff", "host swap configuration" },
	{ SYS_acct, "acct", "host process accounting" },
	{ SYS_settimeofday, "settimeofday", "host clock (no time namespace here)" },
	{ SYS_clock_settime, "clock_settime", "host clock" },
	{ SYS_clock_adjtime, "clock_adjtime", "host clock" },
	{ SYS_adjtimex, "adjtimex", "host clock" },
	{ SYS_iopl, "iopl", "raw I/O port access" },
	{ SYS_ioperm, "ioperm", "raw I/O port access" },
	{ SYS_syslog, "syslog", "host kernel log (leaks addresses, other tenants' messages)" },
	{ SYS_vhangup, "vhangup", "hangs up the controlling terminal" },
	{ SYS_quotactl, "quotactl", "host filesystem quotas" },
	{ SYS_nfsservctl, "nfsservctl", "kernel nfsd control (obsolete)" },
	{ SYS_lookup_dcookie, "lookup_dcookie", "profiling interface, host paths" },
	{ SYS_uselib, "uselib", "obsolete loader, old attack surface" },
	/* Large kernel attack surface with no use in a guest of shell tools. */
	{ SYS_bpf, "bpf", "eBPF programs and maps" },
	{ SYS_perf_event_open, "perf_event_open", "host-wide profiling, side channels" },
	{ SYS_userfaultfd, "userfaultfd", "stalls kernel accesses (race exploitation aid)" },
	{ SYS_io_uring_setup, "io_uring_setup", "io_uring: large, often-exploited surface" },
	{ SYS_io_uring_enter, "io_uring_enter", "io_uring" },
	{ SYS_io_uring_register, "io_uring_register", "io_uring" },
	/* The kernel keyring is not namespaced by user ns alone. */
	{ SYS_keyctl, "keyctl", "kernel keyrings are shared with the host" },
	{ SYS_add_key, "add_key", "kernel keyrings" },
	{ SYS_request_key, "request_key", "kernel keyrings (can upcall to host helpers)" },
	/* File handles bypass path-based confinement (the "shocker" escape). */
	{ SYS_open_by_handle_at, "open_by_handle_at", "opens files outside the guest's root" },
	{ SYS_name_to_handle_at, "name_to_handle_at", "pairs with open_by_handle_at" },
	/* Compares kernel objects across processes: ordering of kernel pointers. */
	{ SYS_kcmp, "kcmp", "kernel pointer ordering; checkpoint/restore only" },
	/* Idmapped mounts and attribute changes on mounts: nothing a guest needs,
	 * and a recent source of kernel bugs; plain mount(2) stays allowed. */
	{ SYS_mount_setattr, "mount_setattr", "idmapped mounts; unneeded" },
};

/* Considered for issue 8 (a command going for the agent, PID 1) and left
 * allowed: ptrace, pidfd_open, pidfd_getfd, process_vm_readv/writev,
 * prlimit64. Each needs a pid (or a pidfd, which comes from one), and the
 * agent has none in the commands' pid namespace (guest-agent/agent_init.c,
 * docs/security.md "The agent"); refusing them would take strace, gdb and
 * the like away from commands debugging their own processes (strace reads
 * strings with process_vm_readv). kcmp is refused above for its own
 * reason. */

/* personality(2) arguments allowed: the default and the query. Other
 * personalities (e.g. ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) weaken the
 * guest's own hardening and have histories of bugs. */
#define PERSONALITY_DEFAULT 0x0u
#define PERSONALITY_QUERY 0xffffffffu

#define NREFUSED (sizeof refused / sizeof refused[0])

const char *ns_seccomp_refused_name(int nr)
{
	for (size_t i = 0; i < NREFUSED; i++)
		if (refused[i].nr == nr)
			return refused[i].name;
	return NULL;
}

struct prog {
	struct sock_filter *insns;
	size_t n, cap;
	int err;
};

static void emit(struct prog *p, struct sock_filter f)
{
	if (p->n >= p->cap) {
		p->err = -E2BIG;
		return;
	}
	p->insns[p->n++] = f;
}

int ns_seccomp_build(struct ns_seccomp *sc)
{
	struct prog p = { .insns = sc->insns, .cap = NS_SECCOMP_MAX };
	const __u32 ret_eperm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
	/* Layout: load arch, check it, load nr, refuse x32, then one
	 * "jeq nr → ret EPERM" pair per refused call (BPF only jumps forward,
	 * so each entry carries its own ret), the personality check, allow. */
	emit(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
	/* Another arch (i386 via int 0x80) has other syscall numbers: the table
	 * below would not apply, so such calls kill the process. */
	emit(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
	/* x32 numbers share AUDIT_ARCH_X86_64 but are offset by the x32 bit; they
	 * would slip past the table, so all of them are refused. */
	emit(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret_eperm));
	for (size_t i = 0; i < NREFUSED; i++) {
		emit(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (__u32)refused[i].nr, 0, 1));
		emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret_eperm));
	}
	/* personality: allow only the default and the query. The argument is an
	 * unsigned int, so only the low 32 bits of args[0] count (x86_64 is
	 * little-endian: they are at the lower address). */
	emit(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_personality, 0, 5));
	emit(&p,
	     (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])));
	emit(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PERSONALITY_DEFAULT, 2, 0));
	emit(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PERSONALITY_QUERY, 1, 0));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret_eperm));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	if (p.err)
		return p.err;
	sc->prog.len = (unsigned short)p.n;
	sc->prog.filter = sc->insns;
	return 0;
}
