/* MNT/stats and MNT/config: key=value text, one per line. */
#ifndef VPFS_INFO_H
#define VPFS_INFO_H

#include <stddef.h>
#include <stdio.h>

#include "pool/pool.h"

#include "vpfs.h"

/* The pool's counters as key=value lines (MNT/stats, images/NAME/stats). */
void info_print_pool_stats(FILE *f, const struct pool_stats *st);
int info_format_stats(struct vpfs *fs, char **out, size_t *len);
int info_format_config(struct vpfs *fs, char **out, size_t *len);

#endif
