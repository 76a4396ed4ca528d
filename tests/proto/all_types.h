/* Every message type, for the codec's tests and its fuzzer, in the order
 * of proto/proto_msgs.h: a seed's frame id is its index here (test_proto
 * --write-corpus), and new types are appended there. */
#ifndef VMPOOL_TESTS_PROTO_ALL_TYPES_H
#define VMPOOL_TESTS_PROTO_ALL_TYPES_H

#include "proto/proto.h"

static const uint16_t vp_all_types[] = {
#define VP_ALL_TYPE_(NAME, value, codec, dir, reply) VP_##NAME,
	VP_MESSAGES(VP_ALL_TYPE_)
#undef VP_ALL_TYPE_
};
#define VP_NTYPES (sizeof vp_all_types / sizeof vp_all_types[0])

#endif
