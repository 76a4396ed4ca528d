/* Command line: vmpoolfs [options] MOUNTPOINT, FUSE-style -o options. */
#ifndef VPFS_OPTS_H
#define VPFS_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "vpfs.h"

/* Parses argv (our -o keys are taken out of args; FUSE's stay for
 * fuse_session_new). Returns 0 to run, 1 when --help/--version was
 * printed, or -EINVAL after printing why on stderr. *mountpoint is
 * malloc'ed. */
int opts_parse(struct fuse_args *args, struct vpfs_opts *o, char **mountpoint);
void opts_free(struct vpfs_opts *o);

/* "512M", "2G", "1048576" → bytes (K/M/G/T are powers of 1024). */
int opts_parse_size(const char *s, uint64_t *out);

#endif
