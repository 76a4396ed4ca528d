/* The multithreaded FUSE loop with a thread cap of our choosing. */
#ifndef VPFS_LOOP_H
#define VPFS_LOOP_H

struct fuse_session;

/* fuse_session_loop_mt with at most max_threads workers; its result. */
int vpfs_loop(struct fuse_session *se, unsigned max_threads);

#endif
