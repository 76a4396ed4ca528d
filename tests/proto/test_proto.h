/* Shared by the protocol codec tests (tests/proto/test_proto_*.c): the
 * sample payloads of proto_samples.c, one valid payload of every type, and
 * the parts of tests that test_proto.c runs in order. */
#ifndef VMPOOL_TESTS_PROTO_TEST_PROTO_H
#define VMPOOL_TESTS_PROTO_TEST_PROTO_H

#include "proto/proto.h"

#include <stddef.h>
#include <stdint.h>

#include "tests/common/tap.h"

#define B(s) ((struct vp_bytes){ (const uint8_t *)(s), (uint32_t)(sizeof(s) - 1) })

/* ---- samples (proto_samples.c) ---- */

extern const struct vp_attr sample_attr;
extern const struct vp_setattr sample_setattr;
extern const struct vp_statfs sample_statfs;

/* A valid request of an fs type (not SETATTR). */
struct vp_fs_req sample_fs(uint16_t type);
void sample_exec(struct vp_exec *m);
/* Appends a valid payload of `type` to b. */
void sample(uint16_t type, struct vp_buf *b);

/* ---- parts ---- */

/* tap.h keeps its counts in each file that includes it, so a file of tests
 * hands test_proto.c its table and a reader of its own failed checks; a
 * test passes when no check failed in any part while it ran. */
struct test_part {
	const struct tap_test *tests;
	size_t n;
	int (*failed_checks)(void);
};

#define TEST_PART(part, table)                \
	static int part##_failed_checks(void) \
	{                                     \
		return tap_mark();            \
	}                                     \
	const struct test_part part = { table, sizeof table / sizeof table[0], part##_failed_checks }

extern const struct test_part proto_roundtrip_part, proto_malformed_part, proto_frame_io_part;

#endif
