/* What every libFuzzer target here shares: the entry point's prototype
 * (the targets are built with -Wmissing-prototypes clean) and FUZZ_CHECK,
 * an invariant that aborts with its text so libFuzzer records the input. */
#ifndef VMPOOL_TESTS_FUZZ_UTIL_H
#define VMPOOL_TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c)                                                                              \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
