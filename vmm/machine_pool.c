/* pool_machine_ops over machines; see machine_pool.h. */
#include "vmm/machine_pool.h"

#include <errno.h>
#include <string.h>

#include "proto/client.h"

#define HEALTH_TIMEOUT_MS 10000

static int op_create(void *ctx, void **machine)
{
	struct machine *m = NULL;
	int r = machine_create(ctx, &m);
	if (r == 0)
		*machine = m;
	return r;
}

static int op_reset(void *ctx, void *machine)
{
	(void)ctx;
	return machine_reset(machine);
}

static void op_destroy(void *ctx, void *machine)
{
	(void)ctx;
	machine_destroy(machine);
}

static bool op_is_alive(void *ctx, void *machine)
{
	(void)ctx;
	return machine_is_alive(machine);
}

static int op_health(void *ctx, void *machine)
{
	(void)ctx;
	return machine_health_check(machine, HEALTH_TIMEOUT_MS);
}

const struct pool_machine_ops machine_pool_ops = {
	.create = op_create,
	.reset = op_reset,
	.destroy = op_destroy,
	.is_alive = op_is_alive,
	.health_check = op_health,
	.now_ms = NULL,
};

/* /bin/true through the client's exec-and-wait: -EIO for any end but exit
 * 0, and a hung agent costs the channel (vp_client_exec_wait). */
int machine_health_check(struct machine *m, int timeout_ms)
{
	struct vp_client *c = machine_client(m);
	if (!c || !vp_client_alive(c))
		return -ENOTCONN;
	static const char cmd[] = "/bin/true";
	struct vp_exec req;
	memset(&req, 0, sizeof(req));
	req.cmd.p = (const uint8_t *)cmd;
	req.cmd.len = sizeof(cmd) - 1;
	req.timeout_ms = (uint32_t)timeout_ms;
	struct vp_exec_run run;
	/* The agent's own timeout first. */
	int r = vp_client_exec_wait(c, &req, 0, timeout_ms / 1000 * 1000 + 2000, &run);
	if (r == 0)
		r = vp_exit_status(&run.ex);
	vp_exec_run_free(&run);
	return r;
}
