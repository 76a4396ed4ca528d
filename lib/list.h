/* An intrusive, circular, doubly linked list (header-only: the static guest
 * agent uses it too). A struct list_node is embedded in each element; the
 * list head is a struct list_node of its own. Not thread-safe: the owner's
 * lock protects the list and its links.
 *
 *   struct list_node head; list_init(&head);
 *   list_add_tail(&head, &e->link);
 *   list_for_each_safe(&head, it, tmp) { struct elem *e = container_of(it, struct elem, link); ... }
 */
#ifndef VMPOOL_LIB_LIST_H
#define VMPOOL_LIB_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/container_of.h"

struct list_node {
	struct list_node *prev, *next;
};

static inline void list_init(struct list_node *head)
{
	head->prev = head->next = head;
}

static inline bool list_empty(const struct list_node *head)
{
	return head->next == head;
}

static inline void list_insert_between(struct list_node *n, struct list_node *prev, struct list_node *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

static inline void list_add_head(struct list_node *head, struct list_node *n)
{
	list_insert_between(n, head, head->next);
}

static inline void list_add_tail(struct list_node *head, struct list_node *n)
{
	list_insert_between(n, head->prev, head);
}

/* Unlinks n and leaves it pointing at itself, so a second list_del and
 * list_linked are safe. */
static inline void list_del(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

/* True while n is in some list (after list_init or list_del: false). */
static inline bool list_linked(const struct list_node *n)
{
	return n->next != n;
}

/* The first element's node, or NULL when empty. */
static inline struct list_node *list_first(const struct list_node *head)
{
	return list_empty(head) ? NULL : head->next;
}

static inline struct list_node *list_pop_head(struct list_node *head)
{
	struct list_node *n = list_first(head);
	if (n)
		list_del(n);
	return n;
}

static inline size_t list_count(const struct list_node *head)
{
	size_t n = 0;
	for (const struct list_node *it = head->next; it != head; it = it->next)
		n++;
	return n;
}

#define list_for_each(head, it) for (struct list_node *it = (head)->next; it != (head); it = it->next)
/* Safe against list_del(it) in the body. */
#define list_for_each_safe(head, it, tmp) \
	for (struct list_node *it = (head)->next, *tmp = it->next; it != (head); it = tmp, tmp = it->next)

#endif
