/* Every message type, for the codec's tests and its fuzzer. */
#ifndef VMPOOL_TESTS_PROTO_ALL_TYPES_H
#define VMPOOL_TESTS_PROTO_ALL_TYPES_H

#include "proto/proto.h"

static const uint16_t vp_all_types[] = {
	VP_HELLO, VP_READY, VP_PING, VP_PONG, VP_ERROR, VP_OK, VP_EXEC, VP_EXEC_STARTED, VP_OUTPUT, VP_EXIT,
	VP_OUTPUT_ACK, VP_STDIN, VP_SIGNAL, VP_FS_LOOKUP, VP_FS_FORGET, VP_FS_GETATTR, VP_FS_SETATTR,
	VP_FS_READLINK, VP_FS_MKNOD, VP_FS_MKDIR, VP_FS_UNLINK, VP_FS_RMDIR, VP_FS_SYMLINK, VP_FS_RENAME,
	VP_FS_LINK, VP_FS_OPEN, VP_FS_CREATE, VP_FS_READ, VP_FS_WRITE, VP_FS_FSYNC, VP_FS_CLOSE,
	VP_FS_OPENDIR, VP_FS_READDIR, VP_FS_STATFS, VP_FS_ENTRY, VP_FS_ATTR, VP_FS_DATA, VP_FS_HANDLE,
	VP_FS_CREATED, VP_FS_WRITTEN, VP_FS_DIRENTS, VP_FS_STATFS_REPLY,
	/* Types added later go last: a seed's frame id is its index here, so
	 * `test_proto --write-corpus` keeps rewriting the older seeds as they are. */
	VP_SET_TIME,
};
#define VP_NTYPES (sizeof vp_all_types / sizeof vp_all_types[0])

#endif
