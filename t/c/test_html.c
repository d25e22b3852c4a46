/* test_html.c — HTML escaping (UTF-32, Latin-1 and UTF-8 input) against hand-written
 * goldens, worst-case output sizes, form decoding and the byte search. */
#include <string.h>

#include "html.h"
#include "tap.h"

static int bytes_are(const uint8_t *got, size_t n, const char *want, const char *what)
{
    int good = n == strlen(want) && !memcmp(got, want, n);
    if (!ok(good, "%s", what))
        printf("#   got [%.*s]\n#  want [%s]\n", (int)n, (const char *)got, want);
    return good;
}

int main(void)
{
    uint8_t out[256];
    size_t n;

    {   /* UTF-32 input: specials, ASCII, 2/3/4-byte code points, a surrogate */
        const uint32_t in[] = {'<', 'a', ' ', 'h', '=', '"', 'x', '\'', '>', '&', 0xE9, 0x20AC,
                               0x1F426, 0xD800, 'z'};
        n = crow_html_escape_utf32(in, sizeof in / 4, out);
        bytes_are(out, n, "&lt;a h=&quot;x&#39;&gt;&amp;\xC3\xA9\xE2\x82\xAC\xF0\x9F\x90\xA6\xEF\xBF\xBDz",
                  "utf32: entities, UTF-8 of each width, surrogate -> U+FFFD");
    }
    {
        const uint32_t in[] = {'"', '"', '"'};
        n = crow_html_escape_utf32(in, 3, out);
        is_int(n, 6 * 3, "utf32: worst case is 6 bytes per unit");
        n = crow_html_escape_utf32(in, 0, out);
        is_int(n, 0, "utf32: empty input");
    }
    {
        const uint8_t in[] = {'a', '<', 0xE9, '&', 0xFF, '\''};
        n = crow_html_escape_latin1(in, sizeof in, out);
        bytes_are(out, n, "a&lt;\xC3\xA9&amp;\xC3\xBF&#39;", "latin1: entities and 2-byte forms");
    }
    {
        const char *in = "caf\xC3\xA9 <b>\"&\"</b>'";
        n = crow_html_escape_utf8((const uint8_t *)in, strlen(in), out);
        bytes_are(out, n, "caf\xC3\xA9 &lt;b&gt;&quot;&amp;&quot;&lt;/b&gt;&#39;",
                  "utf8: multibyte copied, specials escaped");
        n = crow_html_escape_utf8((const uint8_t *)"plain", 5, out);
        bytes_are(out, n, "plain", "utf8: no specials");
    }
    {
        const char *in = "a+b%20c%41%zz%4%e2%82%ac%";
        n = crow_html_form_decode((const uint8_t *)in, strlen(in), out, 1);
        bytes_are(out, n, "a b cA%zz%4\xE2\x82\xAC%", "form: plus, %XX either case, bad escapes kept");
        n = crow_html_form_decode((const uint8_t *)"a+b%2B", 6, out, 0);
        bytes_are(out, n, "a+b+", "form: plus kept when not asked");
        {
            uint8_t buf[] = "x%3D%3dy";
            n = crow_html_form_decode(buf, 8, buf, 1);
            bytes_are(buf, n, "x==y", "form: in place");
        }
    }
    {
        const uint8_t *hay = (const uint8_t *)"--b\r\n--bound\r\nx\r\n--bound--";
        size_t hn = strlen((const char *)hay);
        is_int(crow_html_find(hay, hn, 0, (const uint8_t *)"--bound", 7), 5, "find: first match");
        is_int(crow_html_find(hay, hn, 6, (const uint8_t *)"--bound", 7), 17, "find: from an offset");
        is_int(crow_html_find(hay, hn, 18, (const uint8_t *)"--bound", 7), -1, "find: none after");
        is_int(crow_html_find(hay, hn, hn + 1, (const uint8_t *)"-", 1), -1, "find: FROM beyond the end");
    }
    {   /* percent-encoding: each set's kept bytes against a hand-written list */
        static const char path_keep[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/";
        int good_path = 1, good_cookie = 1;
        for (int b = 0; b < 256; b++) {
            uint8_t in = (uint8_t)b, o[4];
            size_t m = crow_html_percent_encode(&in, 1, o, CROW_HTML_PCT_PATH);
            int kept = b && strchr(path_keep, b) != NULL;
            char want[4];
            snprintf(want, sizeof want, "%%%02X", b);
            if (kept ? !(m == 1 && o[0] == in) : !(m == 3 && !memcmp(o, want, 3)))
                good_path = 0;
            m = crow_html_percent_encode(&in, 1, o, CROW_HTML_PCT_COOKIE);
            kept = b > 32 && b < 127 && !strchr("\",;\\%", b);
            if (kept ? !(m == 1 && o[0] == in) : !(m == 3 && !memcmp(o, want, 3)))
                good_cookie = 0;
        }
        ok(good_path, "percent PATH: unreserved and / kept, every other byte %%XX (upper case)");
        ok(good_cookie, "percent COOKIE: cookie-octets but %% kept, the rest %%XX");
        const uint8_t in[] = "/a b/\xc3\xa9t\xc3\xa9/%.txt";
        n = crow_html_percent_encode(in, sizeof in - 1, out, CROW_HTML_PCT_PATH);
        bytes_are(out, n, "/a%20b/%C3%A9t%C3%A9/%25.txt", "percent PATH: a UTF-8 path");
        n = crow_html_percent_encode((const uint8_t *)"a b;\xc3\xa9", 6, out, CROW_HTML_PCT_COOKIE);
        bytes_are(out, n, "a%20b%3B%C3%A9", "percent COOKIE: space, ; and UTF-8");
        n = crow_html_percent_encode((const uint8_t *)"plain", 5, out, CROW_HTML_PCT_PATH);
        is_int(n, 5, "nothing to encode: the length is unchanged");
        is_int(crow_html_percent_encode(in, 3, out, 7), (size_t)-1, "an unknown set: (size_t)-1");
        uint8_t all[256];
        for (int b = 0; b < 256; b++)
            all[b] = (uint8_t)(255 - b);
        static uint8_t big[3 * 256];
        is_int(crow_html_percent_encode(all, 256, big, CROW_HTML_PCT_PATH), 256 * 3 - 2 * 67,
               "worst case within 3 * N (67 kept bytes)");
    }
    {   /* access-log quoting */
        n = crow_html_log_quote((const uint8_t *)"GET \"a\\b\"\x01\x1f\x7f\xc3\xa9", 14, out);
        bytes_are(out, n, "GET \\\"a\\\\b\\\"\\x01\\x1f\x7f\xc3\xa9", "log quote: \" and \\ escaped, controls \\xhh, the rest as is");
        n = crow_html_log_quote((const uint8_t *)"Mozilla/5.0 (X11)", 17, out);
        is_int(n, 17, "log quote: nothing to quote, length unchanged");
        const uint8_t ctl[3] = {0, '"', 0x0a};
        n = crow_html_log_quote(ctl, 3, out);
        bytes_are(out, n, "\\x00\\\"\\x0a", "log quote: NUL and LF");
    }
    return tap_done();
}
