/* Output of one stream of one command, kept whole up to the machine's
 * output budget.
 *
 * The first `mem_limit` bytes live in memory; the rest is spilled to an
 * unlinked temporary file, so a command that prints gigabytes costs disk,
 * not daemon memory. Both streams of a machine draw on one outbudget
 * (memory and file bytes alike): past it an append keeps the prefix that
 * fits and fails with -EDQUOT, so one machine's flood can never take the
 * spill disk from another, and $TMPDIR holds at most the sum of the
 * budgets. Not thread-safe: the owner (a session) serialises every call
 * with its own lock. */
#ifndef VPFS_OUTPUT_H
#define VPFS_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct outbudget {
	uint64_t max;  /* 0: no limit */
	uint64_t used; /* bytes kept by the outbufs drawing on it */
};

struct outbuf {
	char *mem;
	size_t mem_len, mem_cap, mem_limit;
	int fd;		   /* spill file, -1 until the first spill */
	uint64_t file_len; /* bytes in the spill file */
	const char *spill_dir;
	struct outbudget *budget; /* NULL: none */
};

void outbuf_init(struct outbuf *o, size_t mem_limit, const char *spill_dir);
/* Draw on b from now on (b outlives o; o must be empty). */
void outbuf_set_budget(struct outbuf *o, struct outbudget *b);
void outbuf_free(struct outbuf *o);
/* Drop everything (a new command starts); keeps a small allocation. */
void outbuf_reset(struct outbuf *o);
/* Moves src's content (memory and spill file) into dst, which draws on
 * no budget from then on: src's budget gets the bytes back, and src is
 * left empty, on the same budget (a new command starts while open files
 * still read the old output). outbuf_free(dst) frees it. */
void outbuf_move(struct outbuf *dst, struct outbuf *src);
uint64_t outbuf_len(const struct outbuf *o);
/* 0 or -errno (ENOSPC, EIO from the spill file, ENOMEM; EDQUOT when the
 * budget ran out: the part that fitted was kept). */
int outbuf_append(struct outbuf *o, const void *data, size_t len);
/* Copies up to len bytes from off into dst; returns the count (0 at the
 * end) or -errno. */
ssize_t outbuf_read(const struct outbuf *o, uint64_t off, void *dst, size_t len);

#endif
