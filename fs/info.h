/* MNT/stats and MNT/config: key=value text, one per line. */
#ifndef VPFS_INFO_H
#define VPFS_INFO_H

#include <stddef.h>
#include <stdio.h>

#include "pool/pool.h"

#include "vpfs.h"

/* The pool's counters as key=value lines (MNT/stats, images/NAME/stats). */
void info_print_pool_stats(FILE *f, const struct pool_stats *st);
/* Closes a memstream FILE whose text is *buf and hands the text to *out
 * (0), or frees it (-ENOMEM): the end of every key=value formatter. */
int info_memstream_done(FILE *f, char **buf, char **out);
int info_format_stats(struct vpfs *fs, char **out, size_t *len);
int info_format_config(struct vpfs *fs, char **out, size_t *len);

#endif
