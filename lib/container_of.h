/* container_of: from a pointer to a member back to its enclosing struct.
 * Used by the intrusive list and map in lib/. */
#ifndef VMPOOL_LIB_CONTAINER_OF_H
#define VMPOOL_LIB_CONTAINER_OF_H

#include <stddef.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
