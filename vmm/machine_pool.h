/* The pool's view of machines (pool_machine_ops) over vmm/machine.h, with
 * the health check docs/design.md §2 asks for: EXEC /bin/true must exit 0. */
#ifndef VMPOOL_MACHINE_POOL_H
#define VMPOOL_MACHINE_POOL_H

#include "pool/pool.h"
#include "vmm/machine.h"

/* ctx for the ops is the struct machine_backend *. */
extern const struct pool_machine_ops machine_pool_ops;

/* Runs /bin/true in m; 0 when it exits 0 within timeout_ms. */
int machine_health_check(struct machine *m, int timeout_ms);

#endif
