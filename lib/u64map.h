/* An intrusive chained hash table keyed by uint64_t (header-only: the
 * static guest agent uses it too). Each element embeds a struct
 * u64map_link holding its key; the table owns only its bucket array. It
 * grows (doubling) when it holds more elements than buckets; when that
 * allocation fails it keeps working with longer chains. Not thread-safe:
 * the owner's lock protects the table and its links.
 *
 *   struct u64map m; u64map_init(&m, 64);
 *   e->link.key = id; u64map_insert(&m, &e->link);
 *   struct u64map_link *l = u64map_find(&m, id);
 *   struct elem *e = l ? container_of(l, struct elem, link) : NULL;
 */
#ifndef VMPOOL_LIB_U64MAP_H
#define VMPOOL_LIB_U64MAP_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/container_of.h"

struct u64map_link {
	struct u64map_link *next;
	uint64_t key;
};

struct u64map {
	struct u64map_link **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
};

/* Keys are often small and sequential (ids, inode numbers): a
 * multiplicative hash spreads them over the high bits. */
static inline size_t u64map_bucket(const struct u64map *m, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (m->nbuckets - 1);
}

/* initial: rounded up to a power of two, at least 8. 0 or -ENOMEM. */
static inline int u64map_init(struct u64map *m, size_t initial)
{
	size_t n = 8;
	while (n < initial)
		n *= 2;
	m->count = 0;
	m->nbuckets = 0;
	m->buckets = calloc(n, sizeof(*m->buckets));
	if (!m->buckets)
		return -ENOMEM;
	m->nbuckets = n;
	return 0;
}

/* Frees the bucket array; the elements are the caller's. */
static inline void u64map_destroy(struct u64map *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->count = 0;
}

static inline struct u64map_link *u64map_find(const struct u64map *m, uint64_t key)
{
	for (struct u64map_link *l = m->buckets[u64map_bucket(m, key)]; l; l = l->next)
		if (l->key == key)
			return l;
	return NULL;
}

static inline void u64map_grow(struct u64map *m)
{
	if (m->nbuckets >= ((size_t)1 << 30))
		return;
	struct u64map old = *m;
	struct u64map_link **b = calloc(old.nbuckets * 2, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	m->buckets = b;
	m->nbuckets = old.nbuckets * 2;
	for (size_t i = 0; i < old.nbuckets; i++) {
		for (struct u64map_link *l = old.buckets[i], *next; l; l = next) {
			next = l->next;
			size_t k = u64map_bucket(m, l->key);
			l->next = m->buckets[k];
			m->buckets[k] = l;
		}
	}
	free(old.buckets);
}

/* Inserts l under l->key (the caller sees to uniqueness if it needs it). */
static inline void u64map_insert(struct u64map *m, struct u64map_link *l)
{
	if (m->count >= m->nbuckets)
		u64map_grow(m);
	size_t k = u64map_bucket(m, l->key);
	l->next = m->buckets[k];
	m->buckets[k] = l;
	m->count++;
}

/* Unlinks l; false when it was not in the table. */
static inline bool u64map_remove(struct u64map *m, struct u64map_link *l)
{
	for (struct u64map_link **pp = &m->buckets[u64map_bucket(m, l->key)]; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			l->next = NULL;
			m->count--;
			return true;
		}
	}
	return false;
}

/* Unlinks and returns the element with this key, or NULL. */
static inline struct u64map_link *u64map_take(struct u64map *m, uint64_t key)
{
	struct u64map_link *l = u64map_find(m, key);
	if (l)
		u64map_remove(m, l);
	return l;
}

/* Visits every element; the body may u64map_remove(m, it) (and free it). */
#define u64map_for_each_safe(m, it, tmp)                                                             \
	for (size_t it##_b = 0; it##_b < (m)->nbuckets; it##_b++)                                    \
		for (struct u64map_link *it = (m)->buckets[it##_b], *tmp = it ? it->next : NULL; it; \
		     it = tmp, tmp = it ? it->next : NULL)

#endif
