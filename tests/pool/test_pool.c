/* Unit tests for pool/pool.c against a fake machine backend: counters,
 * injectable failures, an is_alive flag per machine, an injectable clock and
 * optional delays (pool_fake.c). Runs the tests of test_pool_*.c in order,
 * one TAP point each; exits non-zero on any failure. */
#include <stdio.h>

#include "tests/pool/test_pool.h"

/* Every part's failed checks, and this file's. */
static int failed_checks(const struct test_part *const *parts, size_t n)
{
	int k = tap_mark();
	for (size_t i = 0; i < n; i++)
		k += parts[i]->failed_checks();
	return k;
}

int main(void)
{
	static const struct test_part *const parts[] = {
		&pool_create_part,
		&pool_evict_part,
		&pool_reset_part,
		&pool_load_part,
	};
	size_t np = sizeof parts / sizeof parts[0], n = 0;
	for (size_t i = 0; i < np; i++)
		n += parts[i]->n;
	tap_plan((int)n);
	for (size_t i = 0; i < np; i++)
		for (size_t j = 0; j < parts[i]->n; j++) {
			const struct tap_test *t = &parts[i]->tests[j];
			int mark = failed_checks(parts, np);
			t->fn();
			tap_ok(failed_checks(parts, np) == mark, "%s", t->name);
		}
	int rc = tap_done();
	return rc ? rc : failed_checks(parts, np) ? 1 : 0;
}
