/* crow.h — what every c-core module shares: version, attributes, EINTR retry. */
#ifndef CROW_H
#define CROW_H

#define CROW_VERSION "0.1.0"

#if defined(__GNUC__)
#define CROW_LIKELY(x)   __builtin_expect(!!(x), 1)
#define CROW_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CROW_UNUSED      __attribute__((unused))
#else
#define CROW_LIKELY(x)   (x)
#define CROW_UNLIKELY(x) (x)
#define CROW_UNUSED
#endif

/* Evaluates EXPR (a system call returning -1 on error) until it does not fail with EINTR.
 * ECL and the Boehm GC use signals, so every blocking call in the core goes through this. */
#define CROW_RETRY(expr) ({ __typeof__(expr) r_; do { r_ = (expr); } while (r_ == -1 && errno == EINTR); r_; })

/* Returns the library's version string ("MAJOR.MINOR.PATCH").  Can't fail. */
const char *crow_version(void);

#endif
