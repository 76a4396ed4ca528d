/* What the benchmarks on machines share (header only; benchstat.h is for
 * every benchmark, this one needs the client and the machines):
 * bench_exec runs one command and waits for it, bench_open_ns opens the ns
 * backend on the image named by argv[1], $VMPOOL_IMAGE or the build's. */
#ifndef VMPOOL_BENCHRUN_H
#define VMPOOL_BENCHRUN_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"
#include "vmm/machine.h"

/* Runs req in c and waits for its exit, output dropped: 0 when it exits
 * 0, -EIO for any other status, or the client's -errno. */
static inline int bench_exec(struct vp_client *c, const struct vp_exec *req)
{
	struct vp_exec_run run;
	int err = vp_client_exec_wait(c, req, 0, -1, &run);
	/* A signal or the agent's timeout leaves code -1: -EIO as well. */
	if (err == 0 && run.ex.code != 0)
		err = -EIO;
	vp_exec_run_free(&run);
	return err;
}

/* The ns backend on argv[1], else $VMPOOL_IMAGE, else image_default (the
 * build's image); says why on stderr when it cannot be opened. */
static inline int bench_open_ns(int argc, char **argv, const char *image_default, struct machine_backend **b)
{
	const char *image = argc > 1 ? argv[1] : getenv("VMPOOL_IMAGE");
	struct machine_config cfg;
	machine_config_defaults(&cfg);
	cfg.kind = MACHINE_NS;
	cfg.image_dir = image ? image : image_default;
	int err = machine_backend_open(&cfg, b);
	if (err)
		fprintf(stderr, "%s: backend open: %s\n", argv[0], strerror(-err));
	return err;
}

#endif
