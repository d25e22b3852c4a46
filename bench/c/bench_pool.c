/* bench_pool.c — crow_pool against malloc/free (glibc, and jemalloc/mimalloc via LD_PRELOAD).
 *
 *   bench_pool                 measures crow_pool and this process's malloc, prints the section
 *   bench_pool --row NAME      measures one allocator (NAME = crow, crow-keep (a pool that keeps
 *                              every empty slab), or a malloc under test) and
 *                              prints one line: NAME LIB pair_ns alloc_ns free_ns
 *   bench_pool --report FILE   prints the markdown section from such lines
 * bench/c/bench_pool.sh runs --row once per allocator (LD_PRELOAD) and then --report. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"

enum { OBJ = 64, PAIRS = 20000000, LIVE = 100000, ROUNDS = 20, REPS = 5 };
#define TARGET_PAIR_NS 3.0
#define TARGET_FREE_NS 20.0

/* Keeps the compiler from dropping or merging the allocation it is given. */
#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

/* Thread CPU time: on a shared machine the time the scheduler gives to others is not the
 * allocator's. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

struct result {
    double pair, alloc, free_; /* ns per pair, per allocation (100k live), per random free */
};

/* The two allocators under one interface; USE_POOL chooses (a branch the CPU predicts). */
static struct crow_pool *pool;
static int use_pool;

static inline void *get(void) { return use_pool ? crow_pool_get(pool) : malloc(OBJ); }
static inline void put(void *p)
{
    if (use_pool)
        crow_pool_put(pool, p);
    else
        free(p);
}

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint64_t next_rand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static struct result measure(void)
{
    struct result r = {1e30, 1e30, 1e30};
    void **v = malloc(LIVE * sizeof *v);
    uint32_t *order = malloc(LIVE * sizeof *order);
    if (!v || !order) {
        fprintf(stderr, "bench_pool: out of memory\n");
        exit(1);
    }
    for (int rep = 0; rep < REPS; rep++) {
        /* One loop per allocator, so the pair loop pays no dispatch (a global to load and a
         * branch per call) for either. */
        double t0 = now_ns();
        if (use_pool) {
            struct crow_pool *pl = pool;
            for (long i = 0; i < PAIRS; i++) {
                long *o = crow_pool_get(pl);
                *o = i; /* touch it, as a caller would */
                ESCAPE(o);
                crow_pool_put(pl, o);
            }
        } else {
            for (long i = 0; i < PAIRS; i++) {
                long *o = malloc(OBJ);
                *o = i;
                ESCAPE(o);
                free(o);
            }
        }
        double t = (now_ns() - t0) / PAIRS;
        if (t < r.pair)
            r.pair = t;
    }
    for (int rep = 0; rep < REPS; rep++) {
        double ta = 0, tf = 0;
        for (int round = 0; round < ROUNDS; round++) {
            for (uint32_t i = 0; i < LIVE; i++)
                order[i] = i;
            for (uint32_t i = LIVE - 1; i > 0; i--) {
                uint32_t j = (uint32_t)(next_rand() % (i + 1)), x = order[i];
                order[i] = order[j], order[j] = x;
            }
            double t0 = now_ns();
            for (uint32_t i = 0; i < LIVE; i++) {
                long *o = get();
                *o = i;
                v[i] = o;
            }
            double t1 = now_ns();
            for (uint32_t i = 0; i < LIVE; i++)
                put(v[order[i]]);
            double t2 = now_ns();
            ta += t1 - t0, tf += t2 - t1;
        }
        ta /= (double)LIVE * ROUNDS, tf /= (double)LIVE * ROUNDS;
        if (ta < r.alloc)
            r.alloc = ta;
        if (tf < r.free_)
            r.free_ = tf;
    }
    free(v);
    free(order);
    return r;
}

/* The shared object (or executable) that provides malloc in this process. */
static const char *malloc_lib(void)
{
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m && dladdr(m, &info) && info.dli_fname) {
        const char *s = strrchr(info.dli_fname, '/');
        return s ? s + 1 : info.dli_fname;
    }
    return "?";
}

static void row(const char *name, FILE *out)
{
    struct result r;
    const char *lib;
    use_pool = strncmp(name, "crow", 4) == 0;
    if (use_pool) {
        struct crow_pool_config c;
        crow_pool_config_init(&c, OBJ);
        if (!strcmp(name, "crow-keep"))
            c.idle = (size_t)-1; /* keep every slab: no slab made twice */
        if (!(pool = crow_pool_new(&c))) {
            perror("bench_pool: crow_pool_new");
            exit(1);
        }
        r = measure();
        crow_pool_destroy(pool);
        lib = c.idle == 1 ? "libcrowcore.a (crow_pool, idle 1)"
                          : "libcrowcore.a (crow_pool, idle unlimited)";
    } else {
        r = measure();
        lib = malloc_lib();
    }
    fprintf(out, "%s %s %.3f %.3f %.3f\n", name, lib, r.pair, r.alloc, r.free_);
    fflush(out);
}

struct line {
    char name[32], lib[64];
    double pair, alloc, free_;
};

static void report(FILE *in)
{
    struct line l[8];
    int n = 0;
    char buf[256];
    while (n < 8 && fgets(buf, sizeof buf, in)) {
        /* the library field may hold spaces: name, then the last three numbers */
        char *e = buf + strlen(buf);
        while (e > buf && (e[-1] == '\n' || e[-1] == ' '))
            *--e = 0;
        char *sp[3];
        for (int k = 0; k < 3; k++) {
            sp[k] = strrchr(buf, ' ');
            if (!sp[k])
                break;
            *sp[k] = 0;
        }
        if (!sp[0] || !sp[1] || !sp[2])
            continue;
        char *name_end = strchr(buf, ' ');
        if (!name_end)
            continue;
        *name_end = 0;
        snprintf(l[n].name, sizeof l[n].name, "%s", buf);
        snprintf(l[n].lib, sizeof l[n].lib, "%s", name_end + 1);
        l[n].free_ = atof(sp[0] + 1);
        l[n].alloc = atof(sp[1] + 1);
        l[n].pair = atof(sp[2] + 1);
        n++;
    }
    int crow = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i].name, "crow"))
            crow = i;
    double load[1] = {-1};
    if (getloadavg(load, 1) < 0)
        load[0] = -1;
    printf("## pool\n\n");
    printf("Fixed-size %d-byte objects: `crow_pool_get`/`crow_pool_put` (default config: automatic"
           " slab size, one idle slab) against malloc/free.  Peers run in separate processes of"
           " the same binary, jemalloc and mimalloc through LD_PRELOAD (the library column is"
           " where `malloc` resolved).  ns of thread CPU time (time the scheduler gave to other"
           " processes not counted; load average %.2f when the table was written).  Best of %d"
           " repetitions; pair loop %d iterations, each"
           " touching the object; random-order free: %d rounds of %d live objects freed in a"
           " shuffled order (alloc column: the same objects allocated in a row).  `crow` gives"
           " empty slabs back as they empty (idle 1), so each round makes its slabs again"
           " and takes the page faults; `crow-keep` keeps them (idle unlimited).  A put that would"
           " not give a slab back parks the object in the pool's one-object fast path, where the"
           " next get finds it.\n\n",
           OBJ, load[0], REPS, PAIRS, ROUNDS, LIVE);
    printf("| allocator | malloc from | alloc+free pair ns | alloc ns (100k live) "
           "| random free ns | pair vs crow | free vs crow |\n");
    printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) {
        if (crow >= 0)
            printf("| %s | %s | %.2f | %.2f | %.2f | %.2fx | %.2fx |\n", l[i].name, l[i].lib,
                   l[i].pair, l[i].alloc, l[i].free_, l[i].pair / l[crow].pair,
                   l[i].free_ / l[crow].free_);
        else
            printf("| %s | %s | %.2f | %.2f | %.2f | - | - |\n", l[i].name, l[i].lib,
                   l[i].pair, l[i].alloc, l[i].free_);
    }
    if (crow >= 0) {
        printf("\nTargets: alloc+free pair <= %.0f ns: %.2f ns, %s; random-order free <= %.0f"
               " ns per object: %.2f ns, %s.\n", TARGET_PAIR_NS, l[crow].pair,
               l[crow].pair <= TARGET_PAIR_NS ? "**met**" : "**not met**", TARGET_FREE_NS,
               l[crow].free_, l[crow].free_ <= TARGET_FREE_NS ? "**met**" : "**not met**");
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--row")) {
        row(argv[2], stdout);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--report")) {
        FILE *f = fopen(argv[2], "r");
        if (!f) {
            perror(argv[2]);
            return 1;
        }
        report(f);
        fclose(f);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: bench_pool [--row NAME | --report FILE]\n");
        return 2;
    }
    FILE *tmp = tmpfile();
    if (!tmp) {
        perror("bench_pool: tmpfile");
        return 1;
    }
    row("crow", tmp);
    row("crow-keep", tmp);
    row("glibc", tmp);
    rewind(tmp);
    report(tmp);
    fclose(tmp);
    return 0;
}
