/* The multithreaded FUSE loop with a thread cap of our choosing. */
#ifndef VPFS_LOOP_H
#define VPFS_LOOP_H

struct fuse_session;

/* fuse_session_loop_mt with at most max_threads workers; its result.
 * Raises RLIMIT_NOFILE's soft limit to the hard one first (said on
 * stderr); once the loop ends, SIGINT, SIGTERM and SIGHUP are ignored so
 * that the teardown that follows always completes. */
int vpfs_loop(struct fuse_session *se, unsigned max_threads);

#endif
