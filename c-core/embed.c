/* embed.c — lookups in a table of files compiled into the executable.
 *
 * tools/embed-site turns a directory into a C file that defines crow_embedded_site: every
 * regular file as a static byte array, and a table of {path, data, len, mtime} sorted by path
 * (strcmp order, equal to memcmp order on the bytes).  This file only searches such a table;
 * it holds a weak, empty crow_embedded_site so that programs without a generated file link,
 * and a strong definition in a generated object replaces it (so for crow_embedded_config,
 * the text of a configuration embedded with --config, and crow_embedded_name, the program's
 * name given with --name).  Nothing is allocated or copied:
 * the bytes live in the executable's read-only data.
 */
#include "embed.h"

#include <errno.h>
#include <string.h>

__attribute__((weak)) const struct crow_embed_table crow_embedded_site = { 0, NULL };
__attribute__((weak)) const char *const crow_embedded_config = NULL;
__attribute__((weak)) const char *const crow_embedded_name = NULL;

static const struct crow_embed_table *registered;

const struct crow_embed_table *crow_embed_table_get(void)
{
    return registered ? registered : &crow_embedded_site;
}

void crow_embed_register(const struct crow_embed_table *table)
{
    registered = table;
}

static int cmp_path(const struct crow_embed_file *f, const char *path, size_t len)
{
    size_t n = f->path_len < len ? f->path_len : len;
    int c = memcmp(f->path, path, n);
    if (c != 0)
        return c;
    return f->path_len < len ? -1 : f->path_len > len ? 1 : 0;
}

const struct crow_embed_file *crow_embed_lookup(const struct crow_embed_table *table,
                                                const char *path, size_t len)
{
    if (!table)
        table = crow_embed_table_get();
    size_t lo = 0, hi = table->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_path(&table->files[mid], path, len);
        if (c == 0)
            return &table->files[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    errno = ENOENT;
    return NULL;
}

size_t crow_embed_count(const struct crow_embed_table *table)
{
    if (!table)
        table = crow_embed_table_get();
    return table->count;
}

const struct crow_embed_file *crow_embed_at(const struct crow_embed_table *table, size_t i)
{
    if (!table)
        table = crow_embed_table_get();
    if (i >= table->count) {
        errno = ERANGE;
        return NULL;
    }
    return &table->files[i];
}
