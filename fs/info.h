/* MNT/stats and MNT/config: key=value text, one per line. */
#ifndef VPFS_INFO_H
#define VPFS_INFO_H

#include <stddef.h>

#include "vpfs.h"

int info_format_stats(struct vpfs *fs, char **out, size_t *len);
int info_format_config(struct vpfs *fs, char **out, size_t *len);

#endif
