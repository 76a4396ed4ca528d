/* The one list of protocol messages (docs/protocol.md, "Messages").
 *
 * Everything that enumerates message types is generated from
 * VP_MESSAGES: enum vp_type, vp_type_name/vp_type_known, vp_msg_dir,
 * vp_msg_reply, vp_decode/vp_encode (and so vp_validate), union vp_msg,
 * the agent's decode and request checks, the fuzzer's round trip and the
 * tests' list of every type. Adding a message is one line here plus, when
 * its payload has a layout of its own, one VP_CODECS line with its struct,
 * field table (proto_codec.c) and handler.
 *
 * X(NAME, value, codec, dir, reply):
 *   NAME   enum vp_type is VP_NAME
 *   codec  the payload layout, a VP_CODECS entry (struct, vp_dec_/vp_enc_)
 *   dir    REQ    host→guest, answered (reply or ERROR) with its id
 *          ONEWAY host→guest with id 0, never answered
 *          REPLY  guest→host
 *   reply  for REQ the reply type other than ERROR, else 0
 *
 * Order: types added later go last. The tests' fuzzer seeds are named by
 * their index in this list (test_proto --write-corpus), so appending keeps
 * the existing seeds unchanged. */
#ifndef VMPOOL_PROTO_MSGS_H
#define VMPOOL_PROTO_MSGS_H

#define VP_MESSAGES(X)                                                                                  \
	/* session */                                                                                   \
	X(HELLO, 1, hello, REQ, VP_READY) /* also answered by ERROR(EPROTONOSUPPORT) */                 \
	X(READY, 2, ready, REPLY, 0)	  /* also sent unsolicited with id 0 at start */                \
	X(PING, 3, data, REQ, VP_PONG)                                                                  \
	X(PONG, 4, data, REPLY, 0)   /* PING's bytes */                                                 \
	X(ERROR, 5, error, REPLY, 0) /* failure reply to any request */                                 \
	X(OK, 6, empty, REPLY, 0)    /* success reply with no data */                                   \
	/* commands */                                                                                  \
	X(EXEC, 16, exec, REQ, VP_EXEC_STARTED) /* then OUTPUT*, EXIT with the EXEC's id */             \
	X(EXEC_STARTED, 17, exec_started, REPLY, 0)                                                     \
	X(OUTPUT, 18, output, REPLY, 0)                                                                 \
	X(EXIT, 19, exit, REPLY, 0)		 /* the last frame of an EXEC */                        \
	X(OUTPUT_ACK, 20, output_ack, ONEWAY, 0) /* credit back */                                      \
	X(STDIN, 21, stdin, REQ, VP_OK)		 /* OK once written to the pipe */                      \
	X(SIGNAL, 22, signal, REQ, VP_OK)	 /* or ERROR(ESRCH) */                                  \
	/* files: passthrough on guest-side nodes (like FUSE inodes) and handles */                     \
	X(FS_LOOKUP, 32, fs_req, REQ, VP_FS_ENTRY) /* parent, name */                                   \
	X(FS_FORGET, 33, fs_req, ONEWAY, 0)	   /* node, nlookup */                                  \
	X(FS_GETATTR, 34, fs_req, REQ, VP_FS_ATTR) /* node */                                           \
	X(FS_SETATTR, 35, setattr, REQ, VP_FS_ATTR)                                                     \
	X(FS_READLINK, 36, fs_req, REQ, VP_FS_DATA)	  /* node */                                    \
	X(FS_MKNOD, 37, fs_req, REQ, VP_FS_ENTRY)	  /* parent, mode, rdev, name */                \
	X(FS_MKDIR, 38, fs_req, REQ, VP_FS_ENTRY)	  /* parent, mode, name */                      \
	X(FS_UNLINK, 39, fs_req, REQ, VP_OK)		  /* parent, name */                            \
	X(FS_RMDIR, 40, fs_req, REQ, VP_OK)		  /* parent, name */                            \
	X(FS_SYMLINK, 41, fs_req, REQ, VP_FS_ENTRY)	  /* parent, name, target */                    \
	X(FS_RENAME, 42, fs_req, REQ, VP_OK)		  /* parent, newparent, flags, name, newname */ \
	X(FS_LINK, 43, fs_req, REQ, VP_FS_ENTRY)	  /* node, newparent, newname */                \
	X(FS_OPEN, 44, fs_req, REQ, VP_FS_HANDLE)	  /* node, flags */                             \
	X(FS_CREATE, 45, fs_req, REQ, VP_FS_CREATED)	  /* parent, flags, mode, name */               \
	X(FS_READ, 46, fs_req, REQ, VP_FS_DATA)		  /* fh, offset, size; short at EOF */          \
	X(FS_WRITE, 47, fs_req, REQ, VP_FS_WRITTEN)	  /* fh, offset, data */                        \
	X(FS_FSYNC, 48, fs_req, REQ, VP_OK)		  /* fh, datasync */                            \
	X(FS_CLOSE, 49, fs_req, REQ, VP_OK)		  /* fh; files and directories */               \
	X(FS_OPENDIR, 50, fs_req, REQ, VP_FS_HANDLE)	  /* node */                                    \
	X(FS_READDIR, 51, fs_req, REQ, VP_FS_DIRENTS)	  /* fh, offset, max_bytes */                   \
	X(FS_STATFS, 52, fs_req, REQ, VP_FS_STATFS_REPLY) /* node */                                    \
	/* file replies */                                                                              \
	X(FS_ENTRY, 64, entry, REPLY, 0)                                                                \
	X(FS_ATTR, 65, attr, REPLY, 0)                                                                  \
	X(FS_DATA, 66, data, REPLY, 0)                                                                  \
	X(FS_HANDLE, 67, handle, REPLY, 0)                                                              \
	X(FS_CREATED, 68, created, REPLY, 0)                                                            \
	X(FS_WRITTEN, 69, written, REPLY, 0)                                                            \
	X(FS_DIRENTS, 70, dirents, REPLY, 0)                                                            \
	X(FS_STATFS_REPLY, 71, statfs, REPLY, 0)                                                        \
	/* added later (see "Order" above) */                                                           \
	X(SET_TIME, 7, set_time, REQ, VP_OK) /* ERROR(EPERM) where the agent may not set the clock */   \
	X(FS_READDIRPLUS, 53, fs_req, REQ, VP_FS_DIRENTS_PLUS) /* node, fh, offset, max_bytes */        \
	X(FS_DIRENTS_PLUS, 72, direntsplus, REPLY, 0) /* entries with node + attr, counted as lookups */

/* X(codec, member, type, args): payload layouts. `codec` names the
 * functions vp_dec_<codec> and vp_enc_<codec> (proto_codec.c); `member` is its
 * member in union vp_msg; args PLAIN for (payload, len, msg) and TYPED for
 * (payload, len, type, msg), where one struct serves several types. */
#define VP_CODECS(X)                                                 \
	X(hello, hello, struct vp_hello, PLAIN)                      \
	X(ready, ready, struct vp_ready, PLAIN)                      \
	X(data, data, struct vp_data, PLAIN)                         \
	X(error, error, struct vp_error, PLAIN)                      \
	X(empty, empty, struct vp_empty, PLAIN)                      \
	X(set_time, set_time, struct vp_set_time, PLAIN)             \
	X(exec, exec, struct vp_exec, PLAIN)                         \
	X(exec_started, exec_started, struct vp_exec_started, PLAIN) \
	X(output, output, struct vp_output, PLAIN)                   \
	X(exit, exit, struct vp_exit, PLAIN)                         \
	X(output_ack, ack, struct vp_output_ack, PLAIN)              \
	X(stdin, in, struct vp_stdin, PLAIN)                         \
	X(signal, sig, struct vp_signal, PLAIN)                      \
	X(fs_req, fs, struct vp_fs_req, TYPED)                       \
	X(setattr, setattr, struct vp_setattr, PLAIN)                \
	X(entry, entry, struct vp_entry, PLAIN)                      \
	X(attr, attr, struct vp_attr, PLAIN)                         \
	X(handle, handle, struct vp_handle, PLAIN)                   \
	X(created, created, struct vp_created, PLAIN)                \
	X(written, written, struct vp_written, PLAIN)                \
	X(dirents, dirents, struct vp_dirents, PLAIN)                \
	X(direntsplus, direntsplus, struct vp_dirents, PLAIN)        \
	X(statfs, statfs, struct vp_statfs, PLAIN)

#endif
