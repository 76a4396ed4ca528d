/* Runs inside an ns guest (copied in by test_ns): tries what guest root must
 * not be able to do and prints one "name errno" line per attempt (0 when the
 * call succeeded). Static, unsanitized: the guest has no libraries. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void report(const char *name, long r)
{
	printf("%s %d\n", name, r < 0 ? errno : 0);
}

int main(int argc, char **argv)
{
	const char *module = argc > 1 ? argv[1] : "/init";
	int fd = open(module, O_RDONLY | O_CLOEXEC);
	report("finit_module", syscall(SYS_finit_module, fd, "", 0));
	static char image[64];
	report("init_module", syscall(SYS_init_module, image, sizeof image, ""));
	report("delete_module", syscall(SYS_delete_module, "virtio", 0));
	report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
	report("bpf", syscall(SYS_bpf, 0, NULL, 0));
	report("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
	report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	report("userfaultfd", syscall(SYS_userfaultfd, 0));
	report("syslog", syscall(SYS_syslog, 3, NULL, 0));
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
	report("personality_weird", syscall(SYS_personality, ADDR_NO_RANDOMIZE));
	report("personality_query", syscall(SYS_personality, 0xffffffffUL));
	/* getpid through the x32 numbering must be refused, not answered. */
	report("x32_getpid", syscall(0x40000000L | SYS_getpid));
	/* A block device node (8,0 = sda on most hosts) and mounting it. */
	report("mknod_block", mknod("/probe_sda", S_IFBLK | 0600, makedev(8, 0)));
	report("mount_block", mount("/probe_sda", "/mnt", "ext4", MS_RDONLY, NULL));
	report("getpid", syscall(SYS_getpid));
	return 0;
}
