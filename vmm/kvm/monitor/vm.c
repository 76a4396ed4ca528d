/* KVM VM lifecycle and run loop (vm.h). */
#include "vmm/kvm/monitor/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"

/* Just below 4 GiB, where real firmware keeps them and where no RAM or
 * device of ours ever goes (Intel needs both for real-mode emulation). */
#define TSS_ADDR 0xfffbd000ull
#define IDENTITY_MAP_ADDR 0xfffbc000ull
#define KICK_PERIOD_NS 10000000L /* re-kick: the first signal may land before KVM_RUN */

static int kick_signal(void)
{
	return SIGRTMIN + 1;
}

static void kick_handler(int sig)
{
	(void)sig; /* only there so the signal interrupts KVM_RUN with EINTR */
}

static int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

static int check_caps(int kvm_fd)
{
	static const int needed[] = { KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_IRQFD, KVM_CAP_IOEVENTFD,
				      KVM_CAP_USER_MEMORY };
	if (ioctl(kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return -ENOTSUP;
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
		if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, needed[i]) <= 0)
			return -ENOTSUP;
	return 0;
}

/* The vCPU gets what this KVM can virtualise; the table size is not known
 * up front, so grow it until KVM stops answering E2BIG. */
static int setup_cpuid(struct kvm_vm *vm)
{
	for (unsigned nent = 64; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
			int err = neg_errno();
			free(c);
			if (err == -E2BIG)
				continue;
			return err;
		}
		int rc = ioctl(vm->vcpu_fd, KVM_SET_CPUID2, c) < 0 ? neg_errno() : 0;
		free(c);
		return rc;
	}
	return -E2BIG;
}

static int install_kick_handler(void)
{
	struct sigaction old;
	if (sigaction(kick_signal(), NULL, &old) < 0)
		return neg_errno();
	if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
		return 0; /* someone already handles it; any handler interrupts KVM_RUN */
	struct sigaction sa = { .sa_handler = kick_handler };
	sigemptyset(&sa.sa_mask);
	return sigaction(kick_signal(), &sa, NULL) < 0 ? neg_errno() : 0;
}

/* A booted VM's RAM is a memfd mapped shared: the kernel tracks which
 * pages were ever written, so a snapshot copies only those. A restored VM
 * maps the snapshot's memory file privately: copy-on-write, no copy now. */
static int map_ram(struct kvm_vm *vm, uint64_t mem_size, int cow_fd)
{
	void *mem;
	if (cow_fd >= 0) {
		struct stat st;
		if (fstat(cow_fd, &st) < 0)
			return neg_errno();
		if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != mem_size)
			return -EINVAL;
		mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, cow_fd, 0);
	} else {
		vm->mem_fd = memfd_create("kvm-guest-ram", MFD_CLOEXEC);
		if (vm->mem_fd < 0 || ftruncate(vm->mem_fd, (off_t)mem_size) < 0)
			return neg_errno();
		mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->mem_fd, 0);
	}
	if (mem == MAP_FAILED)
		return neg_errno();
	vm->mem = mem;
	vm->mem_size = mem_size;
	return 0;
}

static int create_vm(struct kvm_vm *vm, const char *dev, uint64_t mem_size, int cow_fd)
{
	vm->kvm_fd = open(dev ? dev : "/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return neg_errno();
	int rc = check_caps(vm->kvm_fd);
	if (rc)
		return rc;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0); /* KVM makes it O_CLOEXEC */
	if (vm->vm_fd < 0)
		return neg_errno();
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_ADDR) < 0)
		return neg_errno();
	uint64_t idmap = IDENTITY_MAP_ADDR;
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return neg_errno();
	/* The irqchip must exist before the vCPU so the vCPU gets a local APIC. */
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return neg_errno();
	struct kvm_pit_config pit = { .flags = 0 };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return neg_errno();

	rc = map_ram(vm, mem_size, cow_fd);
	if (rc)
		return rc;
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = mem_size,
		.userspace_addr = (uint64_t)(uintptr_t)vm->mem,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return neg_errno();

	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		return neg_errno();
	int run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (int)sizeof(struct kvm_run))
		return run_size < 0 ? neg_errno() : -EINVAL;
	void *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (run == MAP_FAILED)
		return neg_errno();
	vm->run = run;
	vm->run_size = (size_t)run_size;
	rc = setup_cpuid(vm);
	if (rc)
		return rc;
	return install_kick_handler();
}

static int open_vm(struct kvm_vm *vm, const char *dev, uint64_t mem_size, int cow_fd)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = vm->mem_fd = -1;
	/* Page-granular, and at least the first MiB plus something to load. */
	if (mem_size < (2u << 20) || mem_size > KVM_VM_MEM_MAX || (mem_size & 0xfff))
		return -EINVAL;
	int rc = create_vm(vm, dev, mem_size, cow_fd);
	if (rc)
		kvm_vm_close(vm);
	return rc;
}

int kvm_vm_open(struct kvm_vm *vm, const char *dev, uint64_t mem_size)
{
	return open_vm(vm, dev, mem_size, -1);
}

int kvm_vm_open_cow(struct kvm_vm *vm, const char *dev, uint64_t mem_size, int mem_fd)
{
	if (mem_fd < 0) {
		memset(vm, 0, sizeof(*vm));
		vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = vm->mem_fd = -1;
		return -EBADF;
	}
	return open_vm(vm, dev, mem_size, mem_fd);
}

void kvm_vm_close(struct kvm_vm *vm)
{
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd); /* drops the memory slot before RAM goes away */
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	if (vm->mem_fd >= 0)
		close(vm->mem_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->run = NULL;
	vm->mem = NULL;
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = vm->mem_fd = -1;
	vm->ndevs = 0;
}

void *kvm_vm_gpa(struct kvm_vm *vm, uint64_t gpa, uint64_t len)
{
	if (!vm->mem || gpa > vm->mem_size || len > vm->mem_size - gpa)
		return NULL;
	return vm->mem + gpa;
}

int kvm_vm_add_dev(struct kvm_vm *vm, enum kvm_io_space space, uint64_t base, uint64_t len, kvm_io_fn fn,
		   void *opaque)
{
	if (!fn || len == 0 || base + len < base)
		return -EINVAL;
	if (vm->ndevs >= KVM_VM_MAX_DEVS)
		return -ENOSPC;
	for (int i = 0; i < vm->ndevs; i++) {
		const struct kvm_io_dev *d = &vm->devs[i];
		if (d->space == space && base < d->base + d->len && d->base < base + len)
			return -EEXIST;
	}
	vm->devs[vm->ndevs++] = (struct kvm_io_dev){ space, base, len, fn, opaque };
	return 0;
}

/* Accesses no device claims behave like an empty bus: reads float to all
 * ones, writes vanish. Linux probes legacy ports that we do not model. */
static int dispatch(struct kvm_vm *vm, enum kvm_io_space space, uint64_t addr, uint8_t *data, uint32_t len,
		    bool is_write)
{
	for (int i = 0; i < vm->ndevs; i++) {
		const struct kvm_io_dev *d = &vm->devs[i];
		if (d->space == space && addr >= d->base && addr - d->base < d->len)
			return d->fn(d->opaque, addr - d->base, data, len, is_write);
	}
	if (!is_write)
		memset(data, 0xff, len);
	return 0;
}

static int handle_pio(struct kvm_vm *vm)
{
	struct kvm_run *r = vm->run;
	uint32_t size = r->io.size, count = r->io.count;
	bool is_write = r->io.direction == KVM_EXIT_IO_OUT;
	/* data_offset and count come from the kernel, but a bad value would
	 * have us scribble past the shared page: check anyway. */
	if (size == 0 || size > 4 || r->io.data_offset > vm->run_size ||
	    (uint64_t)size * count > vm->run_size - r->io.data_offset)
		return -EFAULT;
	uint8_t *data = (uint8_t *)r + r->io.data_offset;
	if (is_write && r->io.port == KVM_DEBUG_EXIT_PORT) {
		vm->stopped = true;
		vm->exit_status = data[0];
		return 0;
	}
	for (uint32_t i = 0; i < count; i++) {
		int rc = dispatch(vm, KVM_IO_PIO, r->io.port, data + (size_t)i * size, size, is_write);
		if (rc)
			return rc;
	}
	return 0;
}

static int handle_exit(struct kvm_vm *vm)
{
	struct kvm_run *r = vm->run;
	switch (r->exit_reason) {
	case KVM_EXIT_IO: return handle_pio(vm);
	case KVM_EXIT_MMIO:
		if (r->mmio.len == 0 || r->mmio.len > sizeof(r->mmio.data))
			return -EFAULT;
		return dispatch(vm, KVM_IO_MMIO, r->mmio.phys_addr, r->mmio.data, r->mmio.len,
				r->mmio.is_write);
	case KVM_EXIT_INTR: return 0;
	default:
		/* Shutdown (triple fault), internal error (emulation failure),
		 * failed entry, or an exit we never asked for: the guest is gone. */
		return -EFAULT;
	}
}

/* A kvm_vm_pause request, consumed; the vCPU can run again afterwards. */
static bool take_pause(struct kvm_vm *vm)
{
	if (!__atomic_exchange_n(&vm->pause_req, 0, __ATOMIC_SEQ_CST))
		return false;
	__atomic_store_n(&vm->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	return true;
}

static int arm_kick_timer(timer_t *t, unsigned timeout_ms)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = kick_signal() };
	sev._sigev_un._tid = gettid(); /* glibc 2.36 lacks the sigev_notify_thread_id name */
	if (timer_create(CLOCK_MONOTONIC, &sev, t) < 0)
		return neg_errno();
	struct itimerspec its = {
		.it_value = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L },
		.it_interval = { 0, KICK_PERIOD_NS },
	};
	if (timeout_ms == 0)
		its.it_value.tv_nsec = 1; /* zero would disarm it */
	if (timer_settime(*t, 0, &its, NULL) < 0) {
		int err = neg_errno();
		timer_delete(*t);
		return err;
	}
	return 0;
}

int kvm_vm_run(struct kvm_vm *vm, unsigned timeout_ms)
{
	if (vm->vcpu_fd < 0)
		return -EBADF;
	timer_t timer;
	int rc = arm_kick_timer(&timer, timeout_ms);
	if (rc)
		return rc;
	uint64_t deadline = deadline_after_ms(timeout_ms);
	vm->stopped = false;
	vm->run_thread = pthread_self();
	__atomic_store_n(&vm->in_run, 1, __ATOMIC_SEQ_CST);
	while (!vm->stopped) {
		if (deadline_passed(deadline)) {
			rc = -ETIMEDOUT;
			break;
		}
		if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) {
			if ((errno == EINTR || errno == EAGAIN) && take_pause(vm)) {
				rc = -EINTR;
				break;
			}
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = neg_errno();
			break;
		}
		vm->exits++;
		rc = handle_exit(vm);
		if (rc)
			break;
	}
	__atomic_store_n(&vm->in_run, 0, __ATOMIC_SEQ_CST);
	timer_delete(timer);
	return rc;
}

void kvm_vm_pause(struct kvm_vm *vm)
{
	/* Request first: whoever sees immediate_exit set also sees the request.
	 * immediate_exit covers a signal that lands just before KVM_RUN. */
	__atomic_store_n(&vm->pause_req, 1, __ATOMIC_SEQ_CST);
	if (vm->run)
		__atomic_store_n(&vm->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&vm->in_run, __ATOMIC_SEQ_CST))
		pthread_kill(vm->run_thread, kick_signal());
}

int kvm_vm_settle(struct kvm_vm *vm)
{
	if (vm->vcpu_fd < 0 || !vm->run)
		return -EBADF;
	int rc = 0;
	__atomic_store_n(&vm->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	/* KVM finishes the pending I/O, then sees immediate_exit and returns
	 * EINTR without entering the guest. A string I/O may need a few more
	 * rounds (each one another exit we serve). */
	for (int i = 0;; i++) {
		if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno != EINTR && errno != EAGAIN)
				rc = neg_errno();
			break;
		}
		if (i >= 64 || (rc = handle_exit(vm)) != 0) {
			rc = rc ? rc : -EFAULT;
			break;
		}
	}
	__atomic_store_n(&vm->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	return rc;
}
