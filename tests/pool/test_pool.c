/* Unit tests for pool/pool.c against a fake machine backend: counters,
 * injectable failures, an is_alive flag per machine, an injectable clock and
 * optional delays (pool_fake.c). Runs the tests of test_pool_*.c in order,
 * one TAP point each; exits non-zero on any failure. */
#include <stdio.h>

#include "tests/pool/test_pool.h"

int main(void)
{
	static const struct tap_part *const parts[] = {
		&pool_create_part,
		&pool_evict_part,
		&pool_reset_part,
		&pool_load_part,
	};
	return tap_main_parts(parts, sizeof parts / sizeof parts[0]);
}
