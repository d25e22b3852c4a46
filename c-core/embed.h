/* embed.h — files built into the executable (a site's documents), looked up by path. */
#ifndef CROW_EMBED_H
#define CROW_EMBED_H

#include <stddef.h>
#include <stdint.h>

struct crow_embed_file {
    const char *path;           /* "/dir/name", sorted by strcmp in the table */
    size_t path_len;
    const unsigned char *data;
    size_t len;
    int64_t mtime;              /* the file's mtime at build time (Unix seconds) */
};

struct crow_embed_table {
    size_t count;
    const struct crow_embed_file *files;
};

/* The table tools/embed-site generates (its file defines it); an empty weak default otherwise.
   Never fails. */
extern const struct crow_embed_table crow_embedded_site;

/* The configuration text embedded with tools/embed-site --config (NUL-terminated), or NULL
   (the weak default). */
extern const char *const crow_embedded_config;

/* The program's own name given to tools/embed-site --name (make site NAME=...; NUL-terminated),
   or NULL (the weak default): a site executable logs and answers --version under it. */
extern const char *const crow_embedded_name;

/* Returns the table in use (crow_embedded_site until crow_embed_register changes it).  Never
   fails. */
const struct crow_embed_table *crow_embed_table_get(void);

/* Makes TABLE (NULL: the built-in crow_embedded_site) the table in use.  Not thread-safe: call
   before serving.  Never fails. */
void crow_embed_register(const struct crow_embed_table *table);

/* Returns the entry of TABLE whose path is PATH[0,LEN), or NULL (errno ENOENT) when there is
   none.  TABLE NULL means the table in use.  Binary search, no allocation. */
const struct crow_embed_file *crow_embed_lookup(const struct crow_embed_table *table,
                                                const char *path, size_t len);

/* Returns the number of entries of TABLE (NULL: the table in use).  Never fails. */
size_t crow_embed_count(const struct crow_embed_table *table);

/* Returns entry I of TABLE (NULL: the table in use), or NULL (errno ERANGE) when I is out of
   range. */
const struct crow_embed_file *crow_embed_at(const struct crow_embed_table *table, size_t i);

#endif
