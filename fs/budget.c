/* Host-wide budgets; see budget.h. */
#include "budget.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "vmm/machine.h"

static int read_u64(const char *path, uint64_t *out)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	unsigned long long v;
	int n = fscanf(f, "%llu", &v);
	fclose(f);
	if (n != 1 || v == 0)
		return -EINVAL;
	*out = v;
	return 0;
}

int budget_clamp_at(const struct budget_sources *src, uint32_t machines, uint32_t *pids, uint32_t *nofile,
		    FILE *log)
{
	if (machines == 0) {
		fprintf(log,
			"vmpoolfs: max_machines=0: pids=%" PRIu32 " and nofile=%" PRIu32
			" per machine, but nothing bounds their sum against the host's pid_max and "
			"file-max\n",
			*pids, *nofile);
		return 0;
	}
	uint64_t pid_max, file_max;
	int err = read_u64(src->pid_max, &pid_max);
	if (err) {
		fprintf(log, "vmpoolfs: cannot read %s (%s): pids per machine not checked\n", src->pid_max,
			err == -EINVAL ? "not a number" : "unreadable");
	} else {
		uint64_t share = pid_max / 2;
		if ((uint64_t)machines * *pids > share) {
			uint64_t p = share / machines;
			if (p < BUDGET_PIDS_MIN) {
				fprintf(log,
					"vmpoolfs: max_machines=%" PRIu32
					" machines of at least %d pids exceed"
					" half of the host's pid_max (%" PRIu64 ", %s): lower max_machines\n",
					machines, BUDGET_PIDS_MIN, pid_max, src->pid_max);
				return -ERANGE;
			}
			fprintf(log,
				"vmpoolfs: pids clamped from %" PRIu32 " to %" PRIu64 " per machine:"
				" max_machines=%" PRIu32 " must fit in half of the host's pid_max (%" PRIu64
				", %s)\n",
				*pids, p, machines, pid_max, src->pid_max);
			*pids = (uint32_t)p;
		}
	}
	err = read_u64(src->file_max, &file_max);
	if (err) {
		fprintf(log, "vmpoolfs: cannot read %s (%s): open files per machine not checked\n",
			src->file_max, err == -EINVAL ? "not a number" : "unreadable");
		return 0;
	}
	uint64_t share = file_max / 2;
	uint64_t per = share / machines; /* files one machine may hold */
	if (per <= MACHINE_AGENT_NOFILE + (uint64_t)BUDGET_PIDS_MIN * BUDGET_NOFILE_MIN) {
		fprintf(log,
			"vmpoolfs: max_machines=%" PRIu32 " machines, each with its agent's %u open files,"
			" exceed half of the host's file-max (%" PRIu64 ", %s): lower max_machines\n",
			machines, MACHINE_AGENT_NOFILE, file_max, src->file_max);
		return -ERANGE;
	}
	per -= MACHINE_AGENT_NOFILE; /* the agent's own, beside its commands' */
	if ((uint64_t)*pids * *nofile <= per)
		return 0;
	if (per / *pids >= BUDGET_NOFILE_MIN) {
		fprintf(log,
			"vmpoolfs: nofile clamped from %" PRIu32 " to %" PRIu64 " per process:"
			" max_machines=%" PRIu32 " x pids=%" PRIu32 " must fit in half of the host's file-max"
			" (%" PRIu64 ", %s)\n",
			*nofile, per / *pids, machines, *pids, file_max, src->file_max);
		*nofile = (uint32_t)(per / *pids);
		return 0;
	}
	uint32_t nf = *nofile < BUDGET_NOFILE_MIN ? *nofile : BUDGET_NOFILE_MIN;
	uint64_t p = per / nf;
	if (p < BUDGET_PIDS_MIN) {
		fprintf(log,
			"vmpoolfs: max_machines=%" PRIu32 " machines of at least %d pids x %" PRIu32
			" open files exceed half of the host's file-max (%" PRIu64
			", %s): lower max_machines\n",
			machines, BUDGET_PIDS_MIN, nf, file_max, src->file_max);
		return -ERANGE;
	}
	if (nf != *nofile)
		fprintf(log, "vmpoolfs: nofile clamped from %" PRIu32 " to %" PRIu32 " per process\n",
			*nofile, nf);
	fprintf(log,
		"vmpoolfs: pids clamped from %" PRIu32 " to %" PRIu64 " per machine: max_machines=%" PRIu32
		" x pids x nofile=%" PRIu32 " must fit in half of the host's file-max (%" PRIu64 ", %s)\n",
		*pids, p, machines, nf, file_max, src->file_max);
	*nofile = nf;
	*pids = (uint32_t)p;
	return 0;
}

int budget_clamp(uint32_t machines, uint32_t *pids, uint32_t *nofile, FILE *log)
{
	static const struct budget_sources proc = {
		.pid_max = "/proc/sys/kernel/pid_max",
		.file_max = "/proc/sys/fs/file-max",
	};
	return budget_clamp_at(&proc, machines, pids, nofile, log);
}
