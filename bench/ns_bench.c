/* ns machines: create-to-READY latency, EXEC round trip, file throughput
 * through the protocol. Usage: ns_bench [IMAGE_DIR] (default: the build's
 * image, or $VMPOOL_IMAGE). Needs root. Prints one table. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"
#include "vmm/machine.h"
#include "benchrun.h"
#include "benchstat.h"

#ifndef VMPOOL_IMAGE_DEFAULT
#define VMPOOL_IMAGE_DEFAULT "image"
#endif

#define N_CREATE 50
#define N_EXEC 300
#define XFER_BYTES (256u << 20)
#define XFER_CHUNK (1u << 20)
#define XFER_THREADS 4

/* ---- throughput --------------------------------------------------------- */

struct xfer {
	struct vp_client *c;
	uint64_t fh;
	int index;
	bool write;
	char *buf;
	int err;
};

/* Thread i moves chunks i, i+4, i+8, ...: four requests in flight. */
static void *xfer_thread(void *arg)
{
	struct xfer *x = arg;
	for (uint64_t off = (uint64_t)x->index * XFER_CHUNK; off < XFER_BYTES && !x->err;
	     off += (uint64_t)XFER_THREADS * XFER_CHUNK) {
		uint32_t n = 0;
		x->err = x->write ? vp_fs_write(x->c, x->fh, off, x->buf, XFER_CHUNK, &n)
				  : vp_fs_read(x->c, x->fh, off, x->buf, XFER_CHUNK, &n);
		if (!x->err && n != XFER_CHUNK)
			x->err = -EIO;
	}
	return NULL;
}

static int xfer_run(struct vp_client *c, uint64_t fh, bool write, double *secs)
{
	struct xfer x[XFER_THREADS];
	pthread_t t[XFER_THREADS];
	double t0 = bench_now_us();
	for (int i = 0; i < XFER_THREADS; i++) {
		x[i] = (struct xfer){ .c = c, .fh = fh, .index = i, .write = write, .buf = malloc(XFER_CHUNK) };
		if (!x[i].buf)
			return -ENOMEM;
		memset(x[i].buf, 0x5a + i, XFER_CHUNK);
		pthread_create(&t[i], NULL, xfer_thread, &x[i]);
	}
	int err = 0;
	for (int i = 0; i < XFER_THREADS; i++) {
		pthread_join(t[i], NULL);
		if (x[i].err && !err)
			err = x[i].err;
		free(x[i].buf);
	}
	*secs = (bench_now_us() - t0) / 1e6;
	return err;
}

int main(int argc, char **argv)
{
	struct machine_backend *b;
	int err = bench_open_ns(argc, argv, VMPOOL_IMAGE_DEFAULT, &b);
	if (err)
		return 1;

	static double create_us[N_CREATE], exec_us[N_EXEC];
	struct machine *m = NULL;
	for (int i = 0; i < N_CREATE; i++) {
		double t0 = bench_now_us();
		err = machine_create(b, &m);
		create_us[i] = bench_now_us() - t0;
		if (err) {
			fprintf(stderr, "ns_bench: create: %s\n", strerror(-err));
			machine_backend_close(b);
			return 1;
		}
		if (i + 1 < N_CREATE)
			machine_destroy(m);
	}

	struct vp_client *c = machine_client(m);
	struct vp_exec *req = calloc(1, sizeof *req);
	req->cmd.p = (const uint8_t *)"true";
	req->cmd.len = 4;
	for (int i = 0; i < 10 && !err; i++) /* warm-up */
		err = bench_exec(c, req);
	for (int i = 0; i < N_EXEC && !err; i++) {
		double t0 = bench_now_us();
		err = bench_exec(c, req);
		exec_us[i] = bench_now_us() - t0;
	}
	free(req);
	if (err) {
		fprintf(stderr, "ns_bench: exec: %s\n", strerror(-err));
		return 1;
	}

	uint64_t fh;
	struct vp_entry e;
	double wsec = 0, rsec = 0;
	err = vp_fs_create(c, VP_ROOT_NODE, "bench", O_RDWR | O_CREAT | O_TRUNC, 0644, &fh, &e);
	if (!err)
		err = xfer_run(c, fh, true, &wsec);
	if (!err)
		err = xfer_run(c, fh, false, &rsec);
	if (err) {
		fprintf(stderr, "ns_bench: transfer: %s\n", strerror(-err));
		return 1;
	}
	vp_fs_close(c, fh);
	machine_destroy(m);
	machine_backend_close(b);

	double mb = (double)XFER_BYTES / 1e6;
	printf("%-44s %12s %12s\n", "ns machines", "p50", "p95");
	printf("%-44s %9.2f ms %9.2f ms\n", "create to READY (n=50)",
	       bench_percentile(create_us, N_CREATE, 0.5) / 1e3,
	       bench_percentile(create_us, N_CREATE, 0.95) / 1e3);
	printf("%-44s %9.3f ms %9.3f ms\n", "EXEC round trip of `true` (n=300)",
	       bench_percentile(exec_us, N_EXEC, 0.5) / 1e3, bench_percentile(exec_us, N_EXEC, 0.95) / 1e3);
	printf("%-44s %12s\n", "", "throughput");
	printf("%-44s %9.0f MB/s\n", "write 256 MiB, 1 MiB requests, 4 in flight", mb / wsec);
	printf("%-44s %9.0f MB/s\n", "read 256 MiB, 1 MiB requests, 4 in flight", mb / rsec);
	return 0;
}
