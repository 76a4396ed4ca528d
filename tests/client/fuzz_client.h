/* Shared by the parts of the fuzz_client libFuzzer target (see
 * fuzz_client.c): its bounds, its state of one input, and the entry points
 * of the requesters (fuzz_client_calls.c) and of the agent's script
 * (fuzz_client_agent.c). */
#ifndef VMPOOL_TESTS_CLIENT_FUZZ_CLIENT_H
#define VMPOOL_TESTS_CLIENT_FUZZ_CLIENT_H

#include "proto/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TMO_MS 30
#define HANG_S 5.0	     /* far beyond any call's bound (2 timeouts), even under ASan */
#define FATAL_ID 0x80000000u /* ids a client never reaches within one input */

#define FAIL(...)                                                  \
	do {                                                       \
		fprintf(stderr, "fuzz_client: " __VA_ARGS__);      \
		fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); \
		abort();                                           \
	} while (0)

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- shared state of one input ------------------------------------------------ */

struct fz {
	int afd; /* the agent's end */
	struct vp_client *c;
	pthread_mutex_t mu;
	uint32_t last_id[256]; /* by request type; 0 = none seen */
	unsigned seen;	       /* requests seen */
	atomic_bool stop;
	atomic_ullong output_sent; /* OUTPUT data bytes in frames sent whole */
	atomic_ullong acked;	   /* OUTPUT_ACK bytes the host sent */
	atomic_bool unsynced;	   /* raw bytes or half frames: the stream may hold frames not counted */
	/* write-behind */
	atomic_int async_started, async_done;
};

/* ---- requesters: real calls, checked (fuzz_client_calls.c) -------------------- */

struct req {
	struct fz *f;
	int kind;
	pthread_t t;
};

#define NKINDS 7

/* A requester's thread: calls of its kind until the input ends or the
 * channel dies, every result checked. */
void *req_main(void *arg);

/* ---- the agent's frames, from the input (fuzz_client_agent.c) ------------------ */

struct in {
	const uint8_t *p;
	size_t n;
};

/* One op of the script; false once the channel is gone. */
bool agent_op(struct fz *f, struct in *in, bool *sync);

#endif
