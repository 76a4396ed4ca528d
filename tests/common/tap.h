/* A tiny TAP producer shared by the C tests (header only).
 *
 * A test point is one line, "ok N - name" or "not ok N - name". A point is
 * either one condition (tap_ok, TAP_OK) or a test function's run, which
 * passes when no check failed meanwhile: tap_run, tap_run_all for a table,
 * or tap_mark and tap_ok_since around any call.
 * Checks (CHECK, CHECK_EQ, CHECKF) print a "#" line on failure, count it,
 * and yield whether they held; they may run on any thread. REQUIRE and
 * REQUIRE_EQ also return from the (void) function on failure.
 * tap_done() ends the run: the plan unless tap_plan() gave it first, a
 * summary line when anything failed, and the exit status (0, or 1 when a
 * point or a check failed). tap_main(table) is plan, run and done. */
#ifndef VMPOOL_TESTS_TAP_H
#define VMPOOL_TESTS_TAP_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct tap_state {
	int points, failed_points;
	bool planned;
	atomic_int failed_checks;
};
/* One per program, also when a test's files each include this header: a
 * weak definition, which the linker merges into one object. A check that
 * fails in any file then fails the test running at the time. */
__attribute__((weak)) struct tap_state tap_;

static inline void tap_plan(int n)
{
	printf("1..%d\n", n);
	fflush(stdout);
	tap_.planned = true;
}

/* format: so -Wformat=2 checks the callers, not this vprintf. */
__attribute__((format(printf, 2, 0))) static inline bool tap_vok(bool ok, const char *fmt, va_list ap)
{
	flockfile(stdout);
	printf("%s %d - ", ok ? "ok" : "not ok", ++tap_.points);
	vprintf(fmt, ap);
	printf("\n");
	funlockfile(stdout);
	fflush(stdout);
	if (!ok)
		tap_.failed_points++;
	return ok;
}

__attribute__((format(printf, 2, 3))) static inline bool tap_ok(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tap_vok(ok, fmt, ap);
	va_end(ap);
	return ok;
}

/* A point named by its own condition. */
#define TAP_OK(cond) tap_ok(!!(cond), "%s (line %d)", #cond, __LINE__)

/* Failed checks so far. */
static inline int tap_mark(void)
{
	return atomic_load(&tap_.failed_checks);
}

/* A point that passes when no check failed since `mark`. */
__attribute__((format(printf, 2, 3))) static inline bool tap_ok_since(int mark, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool ok = tap_vok(tap_mark() == mark, fmt, ap);
	va_end(ap);
	return ok;
}

static inline bool tap_run(const char *name, void (*fn)(void))
{
	int mark = tap_mark();
	fn();
	return tap_ok_since(mark, "%s", name);
}

struct tap_test {
	const char *name;
	void (*fn)(void);
};

static inline void tap_run_all(const struct tap_test *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tap_run(t[i].name, t[i].fn);
}

static inline int tap_done(void)
{
	if (!tap_.planned)
		printf("1..%d\n", tap_.points);
	if (tap_.failed_points)
		printf("# %d of %d failed\n", tap_.failed_points, tap_.points);
	fflush(stdout);
	return tap_.failed_points || tap_mark() ? 1 : 0;
}

/* A whole run of a table of tests: main's return value. */
static inline int tap_main(const struct tap_test *t, size_t n)
{
	tap_plan((int)n);
	tap_run_all(t, n);
	return tap_done();
}

/* Tests spread over several files of one program: each file exports its
 * table as a part (TAP_PART), and main runs the parts in order. */
struct tap_part {
	const struct tap_test *tests;
	size_t n;
};
#define TAP_PART(part, table) const struct tap_part part = { table, sizeof table / sizeof table[0] }

static inline int tap_main_parts(const struct tap_part *const *parts, size_t np)
{
	size_t n = 0;
	for (size_t i = 0; i < np; i++)
		n += parts[i]->n;
	tap_plan((int)n);
	for (size_t i = 0; i < np; i++)
		tap_run_all(parts[i]->tests, parts[i]->n);
	return tap_done();
}

/* ---- checks ---- */

static inline void tap_fail_(void)
{
	atomic_fetch_add(&tap_.failed_checks, 1);
	fflush(stdout);
}

static inline bool tap_check_(bool ok, const char *file, int line, const char *expr)
{
	if (!ok) {
		printf("#   %s:%d: expected %s\n", file, line, expr);
		tap_fail_();
	}
	return ok;
}

__attribute__((format(printf, 5, 6))) static inline bool tap_checkf_(bool ok, const char *file, int line,
								     const char *expr, const char *fmt, ...)
{
	if (!ok) {
		flockfile(stdout); /* one line, whatever other threads print */
		printf("#   %s:%d: expected %s: ", file, line, expr);
		va_list ap;
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
		funlockfile(stdout);
		tap_fail_();
	}
	return ok;
}

static inline bool tap_check_eq_(long long a, long long b, const char *file, int line, const char *ea,
				 const char *eb)
{
	if (a != b) {
		printf("#   %s:%d: %s = %lld, expected %s = %lld\n", file, line, ea, a, eb, b);
		tap_fail_();
	}
	return a == b;
}

#define CHECK(cond) tap_check_(!!(cond), __FILE__, __LINE__, #cond)
#define CHECKF(cond, ...) tap_checkf_(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)
#define CHECK_EQ(a, b) tap_check_eq_((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define REQUIRE(cond)             \
	do {                      \
		if (!CHECK(cond)) \
			return;   \
	} while (0)
#define REQUIRE_EQ(a, b)             \
	do {                         \
		if (!CHECK_EQ(a, b)) \
			return;      \
	} while (0)

#endif
