/* test_mmstat.c — libmmstat against an in-process logger (c-core/statlog): wire format,
 * transactions, rollback, modes, limits, acks, and the log's frames (torn tails, damage,
 * snapshots). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mmstat.h"
#include "mmstat_wire.h"
#include "statlog.h"
#include "tap.h"

static char dir[64];
static struct crow_statlog *lg;
static volatile int stop_pumping;

static void *pumper(void *arg)
{
    (void)arg;
    while (!stop_pumping) {
        if (crow_statlog_pump(lg, 20) < 0)
            break;
        crow_statlog_ack(lg);
    }
    return NULL;
}

/* Collects the ops of the last batch as "type flags key value text|" text. */
static void batch_text(char *out, size_t cap)
{
    const unsigned char *b;
    size_t n;
    struct crow_statlog_iter it;
    crow_statlog_batch(lg, &b, &n);
    crow_statlog_iter_init(&it, b, n);
    out[0] = 0;
    while (crow_statlog_iter_next(&it)) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%u %u %.*s %lld %.*s|", it.type, it.flags, (int)it.keylen,
                 it.key, (long long)it.value, (int)it.textlen, it.text);
    }
}

/* Collects the ops of the log's frames from offset FROM on as batch_text does; returns the
 * number of frames, or -1 when one is not valid. */
static int log_text(int fd, size_t from, char *out, size_t cap)
{
    off_t size = lseek(fd, 0, SEEK_END);
    unsigned char *log = malloc((size_t)size + 1);
    int frames = 0;
    out[0] = 0;
    if (!log || pread(fd, log, (size_t)size, 0) != size) {
        free(log);
        return -1;
    }
    size_t off = from;
    ssize_t fl;
    while ((fl = crow_statlog_frame_check(log, (size_t)size, off)) > 0) {
        struct crow_statlog_iter it;
        crow_statlog_iter_init(&it, log + off, (size_t)fl);
        while (crow_statlog_iter_next(&it)) {
            size_t l = strlen(out);
            snprintf(out + l, cap - l, "%u %u %.*s %lld %.*s|", it.type, it.flags,
                     (int)it.keylen, it.key, (long long)it.value, (int)it.textlen, it.text);
        }
        off += (size_t)fl;
        frames++;
    }
    free(log);
    return off == (size_t)size ? frames : -1;
}

int main(void)
{
    char buf[4096], path[128];
    ok(crow_statlog_crc32c(0, "123456789", 9) == 0xE3069283U, "crc32c check value");
    ok(mmstat_match("mmftpd|*|a?c", "mmftpd|logins|abc") && !mmstat_match("x[0-9]", "xa"),
       "shell patterns");

    snprintf(dir, sizeof dir, "/tmp/test_mmstat.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    errno = 0;
    ok(mmstat_open(dir) == NULL && (errno == ENOENT || errno == ECONNREFUSED),
       "open without a server fails with ENOENT/ECONNREFUSED");
    setenv("MMSTAT_DIR", dir, 1);
    ok(strcmp(mmstat_dir(NULL), dir) == 0 && strcmp(mmstat_dir("/x"), "/x") == 0,
       "directory from the argument, then MMSTAT_DIR");

    int dfd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", dir, MMSTAT_LOGGER_SOCK);
    ok(bind(dfd, (struct sockaddr *)&a, sizeof a) == 0, "logger socket bound");
    snprintf(path, sizeof path, "%s/log", dir);
    int lfd = open(path, O_RDWR | O_CREAT | O_APPEND, 0600);
    lg = crow_statlog_new(dfd, lfd, 0, 1);
    crow_statlog_set_policy(lg, CROW_STATLOG_ALWAYS, 0);
    mmstat_t *ms = mmstat_open(NULL);
    ok(ms != NULL, "open");

    char longkey[300];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    errno = 0;
    ok(mmstat_update(ms, "", 1, 0) < 0 && errno == EINVAL, "empty key refused");
    ok(mmstat_update(ms, "a\tb", 1, 0) < 0 && errno == EINVAL, "control byte refused");
    ok(mmstat_update(ms, longkey, 1, 0) < 0 && errno == EINVAL, "256-byte key refused");
    longkey[255] = 0;
    ok(mmstat_commit(ms) < 0 && errno == EINVAL, "commit without begin: EINVAL");
    ok(mmstat_rollback(ms) < 0 && errno == EINVAL, "rollback without begin: EINVAL");

    ok(mmstat_begin(ms) == 0 && mmstat_begin(ms) < 0 && errno == EALREADY, "begin; twice: EALREADY");
    mmstat_update(ms, "a|b", 5, 1);
    mmstat_reset(ms, "v", -7, 0);
    mmstat_delete(ms, "old|*");
    mmstat_set_text(ms, "conf|motd", "hello world", 1);
    mmstat_update(ms, longkey, 1, 0);
    ok(mmstat_commit(ms) == 0, "commit a transaction of 5 ops");
    is_int(crow_statlog_pump(lg, 1000), 1, "the pump logs one transaction");
    batch_text(buf, sizeof buf);
    char want[1024];
    snprintf(want, sizeof want, "1 1 a|b 5 |2 0 v -7 |3 0 old|* 0 |4 1 conf|motd 0 hello world|1 0 %s 1 |",
             longkey);
    ok(strcmp(buf, want) == 0, "ops arrive whole and in order");
    if (strcmp(buf, want))
        printf("# got %s\n", buf);
    is_int(log_text(lfd, 0, buf, sizeof buf), 1, "the mixed transaction is one frame on disk");
    ok(strcmp(buf, "1 1 a|b 5 |3 0 old|* 0 |4 1 conf|motd 0 hello world|") == 0,
       "holding only its persistent ops and deletes, in order");
    if (strcmp(buf, "1 1 a|b 5 |3 0 old|* 0 |4 1 conf|motd 0 hello world|"))
        printf("# got %s\n", buf);
    uint64_t logged = crow_statlog_offset(lg);
    struct crow_statlog_stats st;
    crow_statlog_get_stats(lg, &st);
    uint64_t syncs = st.syncs;

    mmstat_begin(ms);
    mmstat_update(ms, "x", 1, 0);
    mmstat_rollback(ms);
    is_int(crow_statlog_pump(lg, 50), 0, "a rolled back transaction sends nothing");

    mmstat_update(ms, "auto1", 1, 0);
    mmstat_update(ms, "auto2", 1, 0);
    is_int(crow_statlog_pump(lg, 1000), 2, "autoflush: one transaction per operation");
    batch_text(buf, sizeof buf);
    ok(strcmp(buf, "1 0 auto1 1 |1 0 auto2 1 |") == 0, "volatile transactions are in the batch");
    crow_statlog_get_stats(lg, &st);
    ok(crow_statlog_offset(lg) == logged && lseek(lfd, 0, SEEK_END) == (off_t)logged &&
           st.syncs == syncs,
       "a volatile-only batch writes zero bytes and, under always, syncs nothing");
    mmstat_autoflush(ms, 0);
    for (int i = 0; i < 3; i++)
        mmstat_update(ms, "batched", 1, 0);
    is_int(crow_statlog_pump(lg, 50), 0, "batched mode holds operations");
    ok(mmstat_flush(ms) == 0, "flush");
    is_int(crow_statlog_pump(lg, 1000), 3, "flush sends each as its own transaction");
    mmstat_autoflush(ms, 1);

    mmstat_begin(ms);
    int n = 0;
    while (mmstat_update(ms, longkey, 1, 0) == 0)
        n++;
    ok(errno == EMSGSIZE && n > 100, "a full transaction refuses with EMSGSIZE (%d ops fit)", n);
    ok(mmstat_commit(ms) == 0, "the full transaction commits");
    is_int(crow_statlog_pump(lg, 1000), 1, "as one transaction");
    crow_statlog_get_stats(lg, &st);
    is_int(st.ops, 5 + 2 + 3 + n, "every op counted");

    int raw = socket(AF_UNIX, SOCK_DGRAM, 0);
    unsigned char junk[64];
    memset(junk, 'x', sizeof junk);
    sendto(raw, junk, sizeof junk, 0, (struct sockaddr *)&a, sizeof a);
    struct mmstat_wire_head h = {MMSTAT_WIRE_MAGIC, 1, 0, 1, 16, 1};
    unsigned char bad[sizeof h + 16] = {0};
    memcpy(bad, &h, sizeof h);   /* an op with key length 0 */
    bad[sizeof h] = MMSTAT_OP_UPDATE;
    sendto(raw, bad, sizeof bad, 0, (struct sockaddr *)&a, sizeof a);
    is_int(crow_statlog_pump(lg, 1000), 0, "malformed datagrams are not logged");
    crow_statlog_get_stats(lg, &st);
    is_int(st.malformed, 2, "and counted");
    close(raw);

    pthread_t th;
    pthread_create(&th, NULL, pumper, NULL);
    mmstat_begin(ms);
    mmstat_update(ms, "synced", 1, 1);
    ok(mmstat_commit_sync(ms) == 0, "commit_sync is acknowledged");
    ok(mmstat_commit_sync(ms) == 0, "a barrier outside a transaction is acknowledged");
    ok(mmstat_commit_async(ms) < 0 && errno == EINVAL, "commit_async without a transaction: EINVAL");
    mmstat_begin(ms);
    mmstat_update(ms, "async", 1, 0);
    ok(mmstat_commit_async(ms) == 0 && mmstat_fd(ms) >= 0, "commit_async sends");
    int acked = 0;
    for (int i = 0; i < 500 && !(acked = mmstat_ack_check(ms)); i++)
        usleep(2000);
    ok(acked == 1, "mmstat_ack_check sees its acknowledgement");
    stop_pumping = 1;
    pthread_join(th, NULL);
    crow_statlog_get_stats(lg, &st);
    ok(st.syncs >= 1 && st.barriers == 1 && st.acks == 3, "policy always synced; one barrier; three acks");
    mmstat_timeout(ms, 200);
    mmstat_begin(ms);
    mmstat_update(ms, "lost", 1, 1);
    ok(mmstat_commit_sync(ms) < 0 && errno == ETIMEDOUT, "no answer: ETIMEDOUT");
    crow_statlog_pump(lg, 100);

    /* the log on disk: every frame valid, end to end */
    off_t size = lseek(lfd, 0, SEEK_END);
    unsigned char *log = malloc((size_t)size);
    pread(lfd, log, (size_t)size, 0);
    size_t off = 0, last = 0;
    int frames = 0;
    ssize_t fl;
    while ((fl = crow_statlog_frame_check(log, (size_t)size, off)) > 0) {
        last = off;
        off += (size_t)fl;
        frames++;
    }
    /* the mixed transaction, "synced" and "lost": volatile-only transactions left no frame */
    ok(off == (size_t)size && frames == 3, "the log is %d whole frames", frames);
    char got[256];
    log_text(lfd, 0, got, sizeof got);
    ok(strstr(got, "synced") && strstr(got, "lost") && !strstr(got, "auto") &&
           !strstr(got, "batched") && !strstr(got, "async") && !strstr(got, " v "),
       "recovery reads back the persistent ops only");
    int torn_ok = 1;
    for (size_t cut = last + 1; cut < (size_t)size; cut++)
        if (crow_statlog_frame_check(log, cut, last) != 0 || crow_statlog_frame_find(log, cut, last) != -1)
            torn_ok = 0;
    ok(torn_ok, "a cut anywhere in the last frame reads as a torn tail");
    size_t second = (size_t)crow_statlog_frame_check(log, (size_t)size, 0);
    log[second + 40] ^= 1;
    ok(crow_statlog_frame_check(log, (size_t)size, second) == -1, "a flipped bit is damage");
    ssize_t next = crow_statlog_frame_find(log, (size_t)size, second + 1);
    ok(next > (ssize_t)second, "and a valid frame follows it (a damaged middle)");
    free(log);

    /* snapshots */
    snprintf(path, sizeof path, "%s/snap", dir);
    int sfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct crow_statlog_snap *sw = crow_statlog_snap_new(sfd, 1234);
    crow_statlog_snap_add(sw, MMSTAT_OP_META, 0, "log", 3, 7, 4096, 99, NULL, 0);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k|%d", i);
        crow_statlog_snap_add(sw, MMSTAT_OP_RESTORE, 1, key, strlen(key), i, 10, 20,
                              i % 2 ? "t" : NULL, i % 2);
    }
    ok(crow_statlog_snap_finish(sw) == 0, "snapshot written");
    size = lseek(sfd, 0, SEEK_END);
    log = malloc((size_t)size);
    pread(sfd, log, (size_t)size, 0);
    off = 0;
    while ((fl = crow_statlog_frame_check(log, (size_t)size, off)) > 0)
        off += (size_t)fl;
    ok(off == (size_t)size && size > 65536, "snapshot frames all valid (%lld bytes)", (long long)size);
    struct crow_statlog_iter it;
    crow_statlog_iter_init(&it, log, (size_t)size);
    int entries = 0, meta = 0, good = 1;
    while (crow_statlog_iter_next(&it)) {
        if (it.type == MMSTAT_OP_META)
            meta = it.value == 7 && it.created == 4096 && it.modified == 99;
        else {
            if (it.value != entries || it.created != 10 || it.modified != 20 ||
                it.textlen != (size_t)(entries % 2))
                good = 0;
            entries++;
        }
    }
    ok(meta && entries == 5000 && good, "snapshot entries read back with their times");
    free(log);

    /* a full queue: non-blocking sends fail at once, timed ones after their timeout */
    mmstat_t *q = mmstat_open(NULL);
    int sent = 0;
    mmstat_nonblocking(q, 1);
    while (sent < 100000 && mmstat_update(q, "fill", 1, 0) == 0)
        sent++;
    ok(errno == EAGAIN && sent < 100000, "non-blocking: EAGAIN once the server's queue is full (%d sent)", sent);
    mmstat_nonblocking(q, 0);
    mmstat_send_timeout(q, 50);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = mmstat_update(q, "fill", 1, 0);
    int e = errno;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ok(rc < 0 && e == EAGAIN && waited >= 0.04 && waited < 5, "send timeout: EAGAIN after %.3f s", waited);
    mmstat_close(q);
    while (crow_statlog_pump(lg, 0) > 0)
        ;

    mmstat_close(ms);
    crow_statlog_free(lg);
    close(lfd);
    close(dfd);
    close(sfd);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        diag("cleanup failed");
    return tap_done();
}
