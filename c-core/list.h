/* list.h — intrusive doubly linked lists (header only): the node lives inside the object. */
#ifndef CROW_LIST_H
#define CROW_LIST_H

/* Design: a list is {first, last, count} and a node is {prev, next}, both NULL-terminated, so a
 * zero-filled struct crow_list is a valid empty list (calloc'd or static containers need no
 * init call) and a list head may be copied or moved before it holds nodes.  The count is kept
 * so CROW_LIST_COUNT is O(1).  Every operation is O(1) except splice, which is O(1) too (it
 * relinks the ends and adds the counts).  Nothing here allocates, so nothing can fail; the
 * caller guarantees a node is in at most one list at a time and passes the list it is in.
 * Operations are static inline functions (type-checked) behind the UPPER_CASE names. */

#include <stddef.h>

struct crow_list_node {
    struct crow_list_node *prev, *next;
};

struct crow_list {
    struct crow_list_node *first, *last;
    size_t count;
};

#define CROW_LIST_INITIALIZER {NULL, NULL, 0}

/* The struct of type TYPE whose MEMBER is the node at PTR (container_of).  Can't fail. */
#define crow_list_entry(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Empties LIST (forgetting any nodes it held).  Can't fail. */
static inline void crow_list_init(struct crow_list *list)
{
    list->first = list->last = NULL;
    list->count = 0;
}

/* Links NODE in as LIST's first element.  Can't fail. */
static inline void crow_list_insert_head(struct crow_list *list, struct crow_list_node *node)
{
    node->prev = NULL;
    node->next = list->first;
    if (list->first)
        list->first->prev = node;
    else
        list->last = node;
    list->first = node;
    list->count++;
}

/* Links NODE in as LIST's last element.  Can't fail. */
static inline void crow_list_insert_tail(struct crow_list *list, struct crow_list_node *node)
{
    node->next = NULL;
    node->prev = list->last;
    if (list->last)
        list->last->next = node;
    else
        list->first = node;
    list->last = node;
    list->count++;
}

/* Links NODE in just before AT, which is in LIST.  Can't fail. */
static inline void crow_list_insert_before(struct crow_list *list, struct crow_list_node *at,
                                           struct crow_list_node *node)
{
    node->next = at;
    node->prev = at->prev;
    if (at->prev)
        at->prev->next = node;
    else
        list->first = node;
    at->prev = node;
    list->count++;
}

/* Links NODE in just after AT, which is in LIST.  Can't fail. */
static inline void crow_list_insert_after(struct crow_list *list, struct crow_list_node *at,
                                          struct crow_list_node *node)
{
    node->prev = at;
    node->next = at->next;
    if (at->next)
        at->next->prev = node;
    else
        list->last = node;
    at->next = node;
    list->count++;
}

/* Unlinks NODE, which is in LIST; NODE's links are cleared.  Can't fail. */
static inline void crow_list_remove(struct crow_list *list, struct crow_list_node *node)
{
    if (node->prev)
        node->prev->next = node->next;
    else
        list->first = node->next;
    if (node->next)
        node->next->prev = node->prev;
    else
        list->last = node->prev;
    node->prev = node->next = NULL;
    list->count--;
}

/* Unlinks and returns LIST's first node, or NULL when LIST is empty.  Can't fail. */
static inline struct crow_list_node *crow_list_pop_head(struct crow_list *list)
{
    struct crow_list_node *n = list->first;
    if (n)
        crow_list_remove(list, n);
    return n;
}

/* Unlinks and returns LIST's last node, or NULL when LIST is empty.  Can't fail. */
static inline struct crow_list_node *crow_list_pop_tail(struct crow_list *list)
{
    struct crow_list_node *n = list->last;
    if (n)
        crow_list_remove(list, n);
    return n;
}

/* Appends every node of SRC, in order, to the end of DST and leaves SRC empty.  DST and SRC
 * must differ.  Can't fail. */
static inline void crow_list_splice_tail(struct crow_list *dst, struct crow_list *src)
{
    if (!src->first)
        return;
    if (dst->last) {
        dst->last->next = src->first;
        src->first->prev = dst->last;
    } else {
        dst->first = src->first;
    }
    dst->last = src->last;
    dst->count += src->count;
    crow_list_init(src);
}

/* Prepends every node of SRC, in order, to the front of DST and leaves SRC empty.  DST and SRC
 * must differ.  Can't fail. */
static inline void crow_list_splice_head(struct crow_list *dst, struct crow_list *src)
{
    if (!src->first)
        return;
    if (dst->first) {
        dst->first->prev = src->last;
        src->last->next = dst->first;
    } else {
        dst->last = src->last;
    }
    dst->first = src->first;
    dst->count += src->count;
    crow_list_init(src);
}

/* Operation names as macros, for callers that prefer the seed's DLIST_* spelling. */
#define CROW_LIST_INIT(list)                    crow_list_init(list)
#define CROW_LIST_INSERT_HEAD(list, node)       crow_list_insert_head((list), (node))
#define CROW_LIST_INSERT_TAIL(list, node)       crow_list_insert_tail((list), (node))
#define CROW_LIST_INSERT_BEFORE(list, at, node) crow_list_insert_before((list), (at), (node))
#define CROW_LIST_INSERT_AFTER(list, at, node)  crow_list_insert_after((list), (at), (node))
#define CROW_LIST_REMOVE(list, node)            crow_list_remove((list), (node))
#define CROW_LIST_POP_HEAD(list)                crow_list_pop_head(list)
#define CROW_LIST_POP_TAIL(list)                crow_list_pop_tail(list)
#define CROW_LIST_SPLICE(dst, src)              crow_list_splice_tail((dst), (src))
#define CROW_LIST_SPLICE_HEAD(dst, src)         crow_list_splice_head((dst), (src))

/* Accessors (a node's next/prev are NULL at the ends).  Can't fail. */
#define CROW_LIST_FIRST(list) ((list)->first)
#define CROW_LIST_LAST(list)  ((list)->last)
#define CROW_LIST_NEXT(node)  ((node)->next)
#define CROW_LIST_PREV(node)  ((node)->prev)
#define CROW_LIST_COUNT(list) ((list)->count)
#define CROW_LIST_EMPTY(list) ((list)->first == NULL)

/* for (each node N of LIST, first to last).  N must not be unlinked inside the body. */
#define CROW_LIST_FOREACH(n, list) \
    for ((n) = (list)->first; (n) != NULL; (n) = (n)->next)

/* for (each node N of LIST, last to first).  N must not be unlinked inside the body. */
#define CROW_LIST_FOREACH_REVERSE(n, list) \
    for ((n) = (list)->last; (n) != NULL; (n) = (n)->prev)

/* for (each node N of LIST, first to last), TMP holding the next node so the body may unlink
 * (or free) N.  The body must not unlink any node other than N. */
#define CROW_LIST_FOREACH_SAFE(n, tmp, list) \
    for ((n) = (list)->first; (n) != NULL && ((tmp) = (n)->next, 1); (n) = (tmp))

/* The same, last to first. */
#define CROW_LIST_FOREACH_REVERSE_SAFE(n, tmp, list) \
    for ((n) = (list)->last; (n) != NULL && ((tmp) = (n)->prev, 1); (n) = (tmp))

/* for (each containing struct OBJ of LIST, first to last), OBJ a pointer to the struct that
 * holds its node in MEMBER.  OBJ must not be unlinked inside the body.  The hidden cursor is
 * named after the line, so these loops nest (on different lines) without shadowing. */
#define CROW_LIST_FOREACH_ENTRY(obj, list, member) \
    CROW_LIST_FOREACH_ENTRY_((obj), (list), member, CROW_LIST_CAT_(crow_list_n_, __LINE__))
#define CROW_LIST_FOREACH_ENTRY_(obj, list, member, n)                               \
    for (struct crow_list_node *n = (list)->first;                                   \
         n != NULL && ((obj) = crow_list_entry(n, __typeof__(*(obj)), member), 1);   \
         n = n->next)

/* The same, reading the next node first, so the body may unlink (or free) OBJ. */
#define CROW_LIST_FOREACH_ENTRY_SAFE(obj, list, member)                               \
    CROW_LIST_FOREACH_ENTRY_SAFE_((obj), (list), member,                             \
                                  CROW_LIST_CAT_(crow_list_n_, __LINE__),            \
                                  CROW_LIST_CAT_(crow_list_t_, __LINE__))
#define CROW_LIST_FOREACH_ENTRY_SAFE_(obj, list, member, n, t)                       \
    for (struct crow_list_node *n = (list)->first, *t = NULL;                        \
         n != NULL && (t = n->next,                                                  \
             (obj) = crow_list_entry(n, __typeof__(*(obj)), member), 1);             \
         n = t)

#define CROW_LIST_CAT_(a, b)  CROW_LIST_CAT2_(a, b)
#define CROW_LIST_CAT2_(a, b) a##b

#endif
