/* tap.h — a tiny TAP producer for the C unit tests (one header, no library).
 * Use: ok(cond, "what"); ... return tap_done();   Plan is printed at the end. */
#ifndef CROW_TAP_H
#define CROW_TAP_H
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n_, tap_failed_;

static inline __attribute__((format(printf, 2, 3))) int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    printf("%sok %d - ", cond ? "" : "not ", ++tap_n_);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond)
        tap_failed_++;
    fflush(stdout);
    return cond;
}

static inline __attribute__((format(printf, 1, 2))) void skip(const char *fmt, ...)
{
    va_list ap;
    printf("ok %d # SKIP ", ++tap_n_);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline void diag(const char *msg) { printf("# %s\n", msg); fflush(stdout); }

#define is_int(got, want, what) do { long long g_ = (long long)(got), w_ = (long long)(want); \
    if (!ok(g_ == w_, "%s", what)) printf("#   got %lld, want %lld\n", g_, w_); } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n_);
    return tap_failed_ ? 1 : 0;
}
#endif
