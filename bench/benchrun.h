/* What the benchmarks on machines share (header only; benchstat.h is for
 * every benchmark, this one needs the client and the machines):
 * bench_exec runs one command and waits for it, bench_open_ns opens the ns
 * backend on the image named by argv[1], $VMPOOL_IMAGE or the build's. */
#ifndef VMPOOL_BENCHRUN_H
#define VMPOOL_BENCHRUN_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"
#include "vmm/machine.h"

struct bench_exec_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int err, code;
};

static inline void bench_exec_output(void *ctx, int stream, const void *data, size_t len)
{
	(void)ctx, (void)stream, (void)data, (void)len;
}

static inline void bench_exec_exit(void *ctx, const struct vp_exit *ex, int err)
{
	struct bench_exec_wait *w = ctx;
	pthread_mutex_lock(&w->mu);
	w->err = err;
	w->code = ex ? ex->code : -1;
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Runs req in c and waits for its exit, output dropped: 0 when it exits
 * 0, -EIO for any other status, or the client's -errno. */
static inline int bench_exec(struct vp_client *c, const struct vp_exec *req)
{
	static const struct vp_exec_cb cb = {.on_output = bench_exec_output, .on_exit = bench_exec_exit};
	struct bench_exec_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	uint32_t id;
	int err = vp_exec_start(c, req, &cb, &w, &id);
	if (err)
		return err;
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	return w.err ? w.err : w.code ? -EIO : 0;
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
