/* Clang thread-safety annotations (-Wthread-safety) and a mutex they apply
 * to. The analysis checks, at compile time, that a field marked
 * GUARDED_BY(mu) is only touched with mu held and that a function marked
 * REQUIRES(mu) is only called with it held: the lock rules that comments
 * in this tree state ("under s->lock") become errors when broken.
 *
 * pthread_mutex_t is not a capability (glibc does not annotate it), so a
 * guarded field's lock is a struct vp_mutex, whose lock/unlock are
 * annotated. It is a plain pthread_mutex_t inside: vp_mutex_raw() hands it
 * to pthread_cond_wait and friends (the analysis treats the wait as holding
 * the lock throughout, which is what the caller sees).
 *
 * Every macro expands to nothing on other compilers (gcc builds are
 * unchanged) and in the static guest agent nothing uses it.
 * Reference: https://clang.llvm.org/docs/ThreadSafetyAnalysis.html */
#ifndef VMPOOL_LIB_THREAD_SAFETY_H
#define VMPOOL_LIB_THREAD_SAFETY_H

#include <pthread.h>
#include <time.h>

#if defined(__clang__)
#define VP_TSA(x) __attribute__((x))
#else
#define VP_TSA(x)
#endif
/* Attributes on a struct member that name a sibling member (GUARDED_BY(lock)
 * inside the struct that holds lock) parse in C only from clang 19 on
 * (llvm-project PR 95455); clang 14, Debian 12's, rejects the name. But
 * clang 19 to 21 do not check them either: in C the analysis takes the
 * bare name for a global lock, not p->lock, so every access, the correct
 * ones too, is reported (llvm-project issue 161854; fixed by PR 194457,
 * in no release we have). So in C they expand to nothing unless
 * VP_TSA_FIELDS is defined (-DVP_TSA_FIELDS, with a clang that has that
 * fix): the field rules are comments the compiler can be made to read, and
 * the function annotations below (balanced lock/unlock on every path,
 * REQUIRES at each call) are what -Wthread-safety checks. */
#if defined(__clang__) && (defined(__cplusplus) || (__clang_major__ >= 19 && defined(VP_TSA_FIELDS)))
#define VP_TSA_MEMBER(x) __attribute__((x))
#else
#define VP_TSA_MEMBER(x)
#endif

/* A type that is a lock. */
#define CAPABILITY(name) VP_TSA(capability(name))
/* A type whose objects hold a lock for their lifetime (RAII; rare in C). */
#define SCOPED_CAPABILITY VP_TSA(scoped_lockable)
/* Field: read or written only with the lock held. */
#define GUARDED_BY(mu) VP_TSA_MEMBER(guarded_by(mu))
/* Pointer field: what it points at is guarded (the pointer itself is not). */
#define PT_GUARDED_BY(mu) VP_TSA_MEMBER(pt_guarded_by(mu))
/* Lock order: this lock is taken before / after the named ones. Clang
 * checks these only with -Wthread-safety-beta; they document the order. */
#define ACQUIRED_BEFORE(...) VP_TSA_MEMBER(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) VP_TSA_MEMBER(acquired_after(__VA_ARGS__))
/* Function: the caller holds the lock(s) (exclusively / shared). */
#define REQUIRES(...) VP_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) VP_TSA(requires_shared_capability(__VA_ARGS__))
/* Function: takes / drops the lock(s) (for a vp_mutex method: its own). */
#define ACQUIRE(...) VP_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) VP_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) VP_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) VP_TSA(release_shared_capability(__VA_ARGS__))
/* Function: takes the lock when it returns the given value. */
#define TRY_ACQUIRE(...) VP_TSA(try_acquire_capability(__VA_ARGS__))
/* Function: must be called without the lock (it takes it itself). */
#define EXCLUDES(...) VP_TSA(locks_excluded(__VA_ARGS__))
/* Function: asserts at run time that the lock is held. */
#define ASSERT_CAPABILITY(x) VP_TSA(assert_capability(x))
/* Function: returns the named lock (a getter such as vp_mutex_raw). */
#define RETURN_CAPABILITY(x) VP_TSA(lock_returned(x))
/* Function: not checked. Only with a comment saying why it is right
 * (typically: the object is not shared yet, or no longer). */
#define NO_THREAD_SAFETY_ANALYSIS VP_TSA(no_thread_safety_analysis)

/* A pthread mutex the analysis knows. Default attributes, like every
 * pthread_mutex_init(&m, NULL) in the tree. */
struct CAPABILITY("mutex") vp_mutex {
	pthread_mutex_t m;
};

/* The init and destroy are not annotated: an object being made or
 * unmade is not shared. */
static inline int vp_mutex_init(struct vp_mutex *mu)
{
	return pthread_mutex_init(&mu->m, NULL);
}

static inline void vp_mutex_destroy(struct vp_mutex *mu)
{
	pthread_mutex_destroy(&mu->m);
}

/* A default mutex's lock and unlock only fail on misuse (EDEADLK, EPERM
 * are not reported for this type), so there is nothing to return. */
static inline void vp_mutex_lock(struct vp_mutex *mu) ACQUIRE(mu) NO_THREAD_SAFETY_ANALYSIS
{
	pthread_mutex_lock(&mu->m);
}

static inline void vp_mutex_unlock(struct vp_mutex *mu) RELEASE(mu) NO_THREAD_SAFETY_ANALYSIS
{
	pthread_mutex_unlock(&mu->m);
}

/* 1 with the lock taken, 0 when another thread holds it. */
static inline int vp_mutex_trylock(struct vp_mutex *mu) TRY_ACQUIRE(1, mu) NO_THREAD_SAFETY_ANALYSIS
{
	return pthread_mutex_trylock(&mu->m) == 0;
}

/* 1 with the lock taken, 0 when it was not free by `abstime`
 * (CLOCK_MONOTONIC): a sender to a stuck peer must not queue its caller
 * behind another sender for longer than its own deadline. */
#if defined(__SANITIZE_THREAD__)
#define VP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VP_TSAN 1
#endif
#endif

static inline int vp_mutex_clocklock(struct vp_mutex *mu, const struct timespec *abstime)
	TRY_ACQUIRE(1, mu) NO_THREAD_SAFETY_ANALYSIS
{
#ifdef VP_TSAN
	/* ThreadSanitizer (gcc 12's and clang 14's) does not intercept
	 * pthread_mutex_clocklock: it then reports the unlock as "unlock of an
	 * unlocked mutex". Under TSan only, poll with trylock, which it sees. */
	for (;;) {
		if (pthread_mutex_trylock(&mu->m) == 0)
			return 1;
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > abstime->tv_sec ||
		    (now.tv_sec == abstime->tv_sec && now.tv_nsec >= abstime->tv_nsec))
			return 0;
		struct timespec nap = { 0, 200000 };
		nanosleep(&nap, NULL);
	}
#else
	return pthread_mutex_clocklock(&mu->m, CLOCK_MONOTONIC, abstime) == 0;
#endif
}

/* For pthread_cond_wait / clock_cond_wait on a held vp_mutex. */
static inline pthread_mutex_t *vp_mutex_raw(struct vp_mutex *mu) REQUIRES(mu)
{
	return &mu->m;
}

#endif
