/* Host-wide budgets checked at start: max_machines machines, each at its
 * pids.max and RLIMIT_NOFILE, must fit in the host's pid_max and
 * file-max, or one pool could exhaust what every host process shares.
 *
 * The share given to the machines is half of each host limit (the rest is
 * the host's own). Files a machine can hold are pids × nofile (each
 * process its own table). Past a share the per-machine limits are clamped
 * (pids first down to what pid_max allows, then nofile down to
 * BUDGET_NOFILE_MIN, then pids down to BUDGET_PIDS_MIN), each clamp said
 * in one line on `log`; if even the floors do not fit, the start is
 * refused (-ERANGE, with a line saying to lower max_machines). */
#ifndef VPFS_BUDGET_H
#define VPFS_BUDGET_H

#include <stdint.h>
#include <stdio.h>

#define BUDGET_PIDS_MIN 16
#define BUDGET_NOFILE_MIN 256

/* Files standing for /proc/sys/kernel/pid_max and /proc/sys/fs/file-max. */
struct budget_sources {
	const char *pid_max, *file_max;
};

/* machines == 0 (no cap) bounds nothing: said on log, limits kept. An
 * unreadable source is said on log and that check skipped. 0 or -ERANGE. */
int budget_clamp_at(const struct budget_sources *src, uint32_t machines, uint32_t *pids, uint32_t *nofile,
		    FILE *log);
int budget_clamp(uint32_t machines, uint32_t *pids, uint32_t *nofile, FILE *log); /* /proc/sys */

#endif
