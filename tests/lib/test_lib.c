/* lib/: the intrusive list, the u64 map (growth, removal while iterating,
 * sequential and colliding keys) and the clock/deadline helpers. */
#include <errno.h>
#include <stdlib.h>

#include "lib/clock.h"
#include "lib/list.h"
#include "lib/u64map.h"
#include "tests/common/tap.h"

struct elem {
	struct list_node link;
	struct u64map_link node;
	int v;
};

static void test_list(void)
{
	struct list_node head;
	list_init(&head);
	TAP_OK(list_empty(&head) && list_first(&head) == NULL);
	struct elem e[5];
	for (int i = 0; i < 5; i++) {
		e[i].v = i;
		list_add_tail(&head, &e[i].link);
	}
	TAP_OK(list_count(&head) == 5);
	int expect = 0, order_ok = 1;
	list_for_each (&head, it)
		order_ok &= container_of(it, struct elem, link)->v == expect++;
	TAP_OK(order_ok);
	list_for_each_safe (&head, it, tmp)
		if (container_of(it, struct elem, link)->v % 2)
			list_del(it);
	TAP_OK(list_count(&head) == 3 && !list_linked(&e[1].link) && list_linked(&e[2].link));
	list_del(&e[1].link); /* twice: harmless */
	list_add_head(&head, &e[1].link);
	TAP_OK(container_of(list_pop_head(&head), struct elem, link) == &e[1]);
	TAP_OK(container_of(list_pop_head(&head), struct elem, link) == &e[0]);
	TAP_OK(list_count(&head) == 2);
}

static void test_map(void)
{
	struct u64map m;
	TAP_OK(u64map_init(&m, 3) == 0 && m.nbuckets == 8);
	enum { N = 5000 };
	struct elem *e = calloc(N, sizeof(*e));
	for (int i = 0; i < N; i++) {
		/* sequential keys, then keys that differ only in high bits */
		e[i].node.key = i < N / 2 ? (uint64_t)i : ((uint64_t)i << 40);
		e[i].v = i;
		u64map_insert(&m, &e[i].node);
	}
	TAP_OK(m.count == N && m.nbuckets >= N);
	int found = 0;
	for (int i = 0; i < N; i++) {
		struct u64map_link *l = u64map_find(&m, e[i].node.key);
		found += l && container_of(l, struct elem, node)->v == i;
	}
	TAP_OK(found == N);
	TAP_OK(u64map_find(&m, 1ull << 63) == NULL);
	TAP_OK(u64map_take(&m, 7) == &e[7].node && u64map_find(&m, 7) == NULL && m.count == N - 1);
	TAP_OK(!u64map_remove(&m, &e[7].node));
	size_t visited = 0;
	u64map_for_each_safe(&m, it, tmp)
	{
		visited++;
		if (container_of(it, struct elem, node)->v % 3 == 0)
			u64map_remove(&m, it);
	}
	TAP_OK(visited == N - 1);
	TAP_OK(m.count == (size_t)(N - 1 - (N + 2) / 3));
	TAP_OK(u64map_find(&m, 3) == NULL && u64map_find(&m, 4) != NULL);
	u64map_destroy(&m);
	free(e);
}

static void test_clock(void)
{
	uint64_t a = clock_mono_ns();
	TAP_OK(clock_mono_ns() >= a && clock_wall_ms() > 1500000000000ull);
	TAP_OK(deadline_left_ms(0) == -1);
	uint64_t d = deadline_after_ms(200);
	int left = deadline_left_ms(d);
	TAP_OK(left > 100 && left <= 200 && !deadline_passed(d));
	TAP_OK(deadline_left_ms(clock_mono_ns() - 1) == 0 && deadline_passed(1));
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	TAP_OK(clock_cond_init(&cv) == 0);
	pthread_mutex_lock(&mu);
	uint64_t t0 = clock_mono_ms();
	int r = clock_cond_wait(&cv, &mu, deadline_after_ms(30));
	uint64_t waited = clock_mono_ms() - t0;
	pthread_mutex_unlock(&mu);
	TAP_OK(r == -ETIMEDOUT && waited >= 29);
	pthread_cond_destroy(&cv);
}

int main(void)
{
	test_list();
	test_map();
	test_clock();
	return tap_done();
}
