/* test_embed.c — lookups in a small table shaped like tools/embed-site's output: every
 * present path found with its bytes, absent paths and prefixes not found, the strong
 * crow_embedded_site below replacing embed.c's weak empty one, register and listing. */
#include <errno.h>
#include <string.h>

#include "embed.h"
#include "tap.h"

static const unsigned char f0[] = "<h1>hi</h1>\n";
static const unsigned char f1[] = { 0, 1, 2, 255, 0 };
static const unsigned char f2[] = "body{}";
static const unsigned char f3[] = "";

static const struct crow_embed_file files[] = {
    { "/a/b.css", 8, f2, 6, 100 },
    { "/img/x.bin", 10, f1, 4, 200 },
    { "/index.html", 11, f0, 12, 300 },
    { "/index.html2", 12, f3, 0, 400 },
};

const struct crow_embed_table crow_embedded_site = { 4, files };

static const struct crow_embed_table empty = { 0, NULL };

int main(void)
{
    is_int(crow_embed_count(NULL), 4, "the generated table replaces the weak default");
    for (size_t i = 0; i < 4; i++) {
        const struct crow_embed_file *f = crow_embed_lookup(NULL, files[i].path, files[i].path_len);
        ok(f == &files[i], "found %s", files[i].path);
        ok(crow_embed_at(NULL, i) == &files[i], "entry %zu is %s", i, files[i].path);
    }
    const struct crow_embed_file *f = crow_embed_lookup(NULL, "/img/x.bin", 10);
    ok(f && f->len == 4 && memcmp(f->data, "\0\1\2\377", 4) == 0 && f->mtime == 200,
       "binary bytes, length and mtime");
    /* a path given with a length: the bytes beyond LEN are not looked at */
    ok(crow_embed_lookup(NULL, "/index.htmlXYZ", 11) == &files[2], "length bounds the key");
    const char *absent[] = { "", "/", "/a", "/a/b.cs", "/a/b.cssx", "/index.htm", "/zzz", "/A/b.css" };
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++) {
        errno = 0;
        ok(crow_embed_lookup(NULL, absent[i], strlen(absent[i])) == NULL && errno == ENOENT,
           "absent \"%s\": NULL, ENOENT", absent[i]);
    }
    errno = 0;
    ok(crow_embed_at(NULL, 4) == NULL && errno == ERANGE, "past the end: NULL, ERANGE");
    crow_embed_register(&empty);
    ok(crow_embed_count(NULL) == 0 && crow_embed_lookup(NULL, "/index.html", 11) == NULL,
       "a registered empty table is used");
    ok(crow_embed_lookup(&crow_embedded_site, "/index.html", 11) == &files[2],
       "an explicit table is searched regardless");
    crow_embed_register(NULL);
    ok(crow_embed_count(NULL) == 4, "register NULL returns to the built-in table");
    return tap_done();
}
