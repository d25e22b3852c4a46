/* test_list.c — every list.h operation and iterator, checked against the expected order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "tap.h"

struct item {
    int before;             /* the node is not the first member, so entry must subtract */
    struct crow_list_node node;
    int v;
};

/* Writes LIST's values, first to last, as "1,2,3" into BUF; also checks the back links and
 * the count agree with the forward walk (returns "BROKEN..." if not). */
static const char *order(struct crow_list *list, char *buf, size_t cap)
{
    struct crow_list_node *n, *prev = NULL;
    size_t len = 0, count = 0;
    buf[0] = 0;
    CROW_LIST_FOREACH(n, list) {
        if (n->prev != prev)
            return "BROKEN prev link";
        struct item *it = crow_list_entry(n, struct item, node);
        len += (size_t)snprintf(buf + len, cap - len, "%s%d", count ? "," : "", it->v);
        prev = n;
        count++;
    }
    if (CROW_LIST_LAST(list) != prev)
        return "BROKEN last";
    if (CROW_LIST_COUNT(list) != count)
        return "BROKEN count";
    if (CROW_LIST_EMPTY(list) != (count == 0))
        return "BROKEN empty";
    return buf;
}

static int same(struct crow_list *list, const char *want, const char *what)
{
    char buf[256];
    const char *got = order(list, buf, sizeof buf);
    int r = ok(strcmp(got, want) == 0, "%s: [%s]", what, want);
    if (!r)
        printf("#   got [%s]\n", got);
    return r;
}

int main(void)
{
    struct item it[10];
    for (int i = 0; i < 10; i++) {
        it[i].before = -1;
        it[i].v = i;
    }
    struct crow_list l = CROW_LIST_INITIALIZER, m;
    struct crow_list zero;
    memset(&zero, 0, sizeof zero);
    same(&zero, "", "a zero-filled list is empty");
    ok(CROW_LIST_FIRST(&l) == NULL && CROW_LIST_LAST(&l) == NULL, "initializer: no first/last");

    CROW_LIST_INSERT_TAIL(&l, &it[1].node);
    same(&l, "1", "insert_tail into empty");
    CROW_LIST_INSERT_TAIL(&l, &it[2].node);
    CROW_LIST_INSERT_HEAD(&l, &it[0].node);
    same(&l, "0,1,2", "insert_head and insert_tail");
    CROW_LIST_INIT(&m);
    CROW_LIST_INSERT_HEAD(&m, &it[9].node);
    same(&m, "9", "insert_head into empty");

    CROW_LIST_INSERT_BEFORE(&l, &it[0].node, &it[3].node);
    same(&l, "3,0,1,2", "insert_before the first");
    CROW_LIST_INSERT_BEFORE(&l, &it[2].node, &it[4].node);
    same(&l, "3,0,1,4,2", "insert_before in the middle");
    CROW_LIST_INSERT_AFTER(&l, &it[2].node, &it[5].node);
    same(&l, "3,0,1,4,2,5", "insert_after the last");
    CROW_LIST_INSERT_AFTER(&l, &it[3].node, &it[6].node);
    same(&l, "3,6,0,1,4,2,5", "insert_after in the middle");
    ok(CROW_LIST_FIRST(&l) == &it[3].node && CROW_LIST_LAST(&l) == &it[5].node, "first and last");
    ok(CROW_LIST_NEXT(&it[6].node) == &it[0].node && CROW_LIST_PREV(&it[6].node) == &it[3].node,
       "next and prev");
    ok(crow_list_entry(&it[7].node, struct item, node) == &it[7], "entry is container_of");

    CROW_LIST_REMOVE(&l, &it[3].node);
    same(&l, "6,0,1,4,2,5", "remove the first");
    ok(it[3].node.prev == NULL && it[3].node.next == NULL, "remove clears the node's links");
    CROW_LIST_REMOVE(&l, &it[5].node);
    same(&l, "6,0,1,4,2", "remove the last");
    CROW_LIST_REMOVE(&l, &it[1].node);
    same(&l, "6,0,4,2", "remove in the middle");

    char buf[64] = "";
    size_t len = 0;
    struct crow_list_node *n, *tmp;
    CROW_LIST_FOREACH_REVERSE(n, &l)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%d",
                                crow_list_entry(n, struct item, node)->v);
    ok(strcmp(buf, "2406") == 0, "foreach_reverse walks last to first (%s)", buf);

    struct item *e;
    len = 0;
    CROW_LIST_FOREACH_ENTRY(e, &l, node)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%d", e->v);
    ok(strcmp(buf, "6042") == 0, "foreach_entry walks first to last (%s)", buf);

    /* The safe iterators survive unlinking the current node (and the link poisoning that
     * remove does, which would stop the unsafe ones early). */
    int visited = 0;
    CROW_LIST_FOREACH_SAFE(n, tmp, &l) {
        visited++;
        if (crow_list_entry(n, struct item, node)->v % 4 == 0) /* 0 and 4 */
            CROW_LIST_REMOVE(&l, n);
    }
    is_int(visited, 4, "foreach_safe visits every node while removing");
    same(&l, "6,2", "foreach_safe removed the chosen nodes");
    CROW_LIST_INSERT_TAIL(&l, &it[0].node);
    CROW_LIST_INSERT_TAIL(&l, &it[4].node);
    visited = 0;
    CROW_LIST_FOREACH_REVERSE_SAFE(n, tmp, &l) {
        visited++;
        if (crow_list_entry(n, struct item, node)->v == 2)
            CROW_LIST_REMOVE(&l, n);
    }
    is_int(visited, 4, "foreach_reverse_safe visits every node while removing");
    same(&l, "6,0,4", "foreach_reverse_safe removed the chosen node");
    visited = 0;
    CROW_LIST_FOREACH_ENTRY_SAFE(e, &l, node) {
        visited++;
        if (e->v == 0)
            CROW_LIST_REMOVE(&l, &e->node);
    }
    is_int(visited, 3, "foreach_entry_safe visits every entry while removing");
    same(&l, "6,4", "foreach_entry_safe removed the chosen entry");

    /* Entry loops nest (each has its own hidden cursor) and see every pair. */
    struct item *e2;
    int pairs = 0, sum = 0;
    CROW_LIST_FOREACH_ENTRY(e, &l, node) {
        CROW_LIST_FOREACH_ENTRY(e2, &l, node) {
            pairs++;
            sum += e->v * 10 + e2->v;
        }
    }
    is_int(pairs, 4, "nested foreach_entry visits 2 x 2 pairs");
    is_int(sum, 66 + 64 + 46 + 44, "nested foreach_entry pairs are (6,6) (6,4) (4,6) (4,4)");

    /* Splices: into a non-empty list, from an empty one, into an empty one, at the head. */
    CROW_LIST_INSERT_TAIL(&m, &it[8].node);
    CROW_LIST_SPLICE(&l, &m);
    same(&l, "6,4,9,8", "splice appends in order");
    same(&m, "", "splice leaves the source empty");
    CROW_LIST_SPLICE(&l, &m);
    same(&l, "6,4,9,8", "splice of an empty list changes nothing");
    CROW_LIST_SPLICE(&m, &l);
    same(&m, "6,4,9,8", "splice into an empty list moves everything");
    same(&l, "", "and empties the source");
    CROW_LIST_INSERT_TAIL(&l, &it[1].node);
    CROW_LIST_INSERT_TAIL(&l, &it[2].node);
    CROW_LIST_SPLICE_HEAD(&m, &l);
    same(&m, "1,2,6,4,9,8", "splice_head prepends in order");
    same(&l, "", "splice_head leaves the source empty");
    CROW_LIST_SPLICE_HEAD(&l, &m);
    same(&l, "1,2,6,4,9,8", "splice_head into an empty list");
    CROW_LIST_SPLICE_HEAD(&l, &m);
    same(&l, "1,2,6,4,9,8", "splice_head of an empty list changes nothing");

    ok(CROW_LIST_POP_HEAD(&l) == &it[1].node, "pop_head returns the first");
    ok(CROW_LIST_POP_TAIL(&l) == &it[8].node, "pop_tail returns the last");
    same(&l, "2,6,4,9", "pops unlinked them");
    while (CROW_LIST_POP_TAIL(&l))
        ;
    same(&l, "", "popping empties the list");
    ok(CROW_LIST_POP_HEAD(&l) == NULL && CROW_LIST_POP_TAIL(&l) == NULL, "pop on empty is NULL");
    is_int(CROW_LIST_COUNT(&l), 0, "count after pops");

    /* A longer random run against an array model: inserts at random places and removals. */
    enum { N = 200 };
    struct item *pool = calloc(N, sizeof *pool);
    int model[N], mlen = 0, in[N] = {0}, bad = 0;
    crow_list_init(&l);
    srand(7);
    for (int step = 0; step < 5000 && !bad; step++) {
        int k = rand() % N;
        pool[k].v = k;
        if (!in[k]) {
            int pos = mlen ? rand() % (mlen + 1) : 0;
            if (pos == mlen)
                crow_list_insert_tail(&l, &pool[k].node);
            else if (rand() & 1)
                crow_list_insert_before(&l, &pool[model[pos]].node, &pool[k].node);
            else if (pos == 0)
                crow_list_insert_head(&l, &pool[k].node);
            else
                crow_list_insert_after(&l, &pool[model[pos - 1]].node, &pool[k].node);
            memmove(model + pos + 1, model + pos, (size_t)(mlen - pos) * sizeof *model);
            model[pos] = k, mlen++, in[k] = 1;
        } else {
            crow_list_remove(&l, &pool[k].node);
            int pos = 0;
            while (model[pos] != k)
                pos++;
            memmove(model + pos, model + pos + 1, (size_t)(mlen - pos - 1) * sizeof *model);
            mlen--, in[k] = 0;
        }
        int i = 0;
        CROW_LIST_FOREACH(n, &l) {
            if (i >= mlen || crow_list_entry(n, struct item, node)->v != model[i])
                bad = 1;
            i++;
        }
        if (i != mlen || l.count != (size_t)mlen)
            bad = 1;
    }
    ok(!bad, "5000 random inserts/removes match an array model");
    free(pool);
    return tap_done();
}
