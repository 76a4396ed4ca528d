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

/* The files of tests, each a part (tests/common/tap.h, TAP_PART). */
extern const struct tap_part proto_roundtrip_part, proto_malformed_part, proto_frame_io_part;

#endif
