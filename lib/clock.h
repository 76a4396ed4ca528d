/* Monotonic time and deadlines, one definition for the whole tree
 * (header-only: the static guest agent uses it too). Every timeout in
 * vmpoolfs is measured on CLOCK_MONOTONIC, so a wall-clock change (the
 * guest's SET_TIME, NTP on the host) never fires or stretches one. */
#ifndef VMPOOL_LIB_CLOCK_H
#define VMPOOL_LIB_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_mono_us(void)
{
	return clock_mono_ns() / 1000u;
}

static inline uint64_t clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000u;
}

/* Wall-clock milliseconds since the epoch (for reports such as stat's
 * started_ms, never for timeouts). */
static inline uint64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A deadline is an absolute CLOCK_MONOTONIC time in ns; 0 means none. */
static inline uint64_t deadline_after_ms(uint64_t ms)
{
	return clock_mono_ns() + ms * 1000000u;
}

/* Milliseconds left, rounded up (0 once passed; -1 for no deadline, as
 * poll(2) takes it). */
static inline int deadline_left_ms(uint64_t deadline)
{
	if (deadline == 0)
		return -1;
	uint64_t now = clock_mono_ns();
	if (now >= deadline)
		return 0;
	uint64_t left = (deadline - now + 999999u) / 1000000u;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

static inline int deadline_passed(uint64_t deadline)
{
	return deadline != 0 && clock_mono_ns() >= deadline;
}

static inline struct timespec deadline_timespec(uint64_t deadline)
{
	struct timespec ts = { (time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u) };
	return ts;
}

/* A condition variable that waits on CLOCK_MONOTONIC, for
 * clock_cond_wait. */
static inline int clock_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	int r = pthread_condattr_init(&a);
	if (r)
		return -r;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	r = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return -r;
}

/* pthread_cond_wait until the deadline (0: no deadline); 0 or -ETIMEDOUT.
 * cv must come from clock_cond_init. */
static inline int clock_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline)
{
	if (deadline == 0)
		return -pthread_cond_wait(cv, mu);
	struct timespec ts = deadline_timespec(deadline);
	return -pthread_cond_timedwait(cv, mu, &ts);
}

#endif
