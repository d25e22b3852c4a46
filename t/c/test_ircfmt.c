/* test_ircfmt.c — mIRC formatting stripped from IRC text: colours with and without
 * backgrounds, hex colours, toggles, commas that are text, codes at the end, UTF-8 kept,
 * in place. */
#include <string.h>

#include "ircfmt.h"
#include "tap.h"

static void strip_is(const char *in, const char *want, const char *what)
{
    uint8_t out[256];
    size_t n = crow_ircfmt_strip((const uint8_t *)in, strlen(in), out);
    if (!ok(n == strlen(want) && !memcmp(out, want, n), "%s", what))
        printf("#   got [%.*s]\n#  want [%s]\n", (int)n, (const char *)out, want);
}

int main(void)
{
    strip_is("plain text", "plain text", "text without codes is kept");
    strip_is("\x03" "04red\x03 and \x02" "bold\x02", "red and bold", "colour, reset colour, bold");
    strip_is("\x03" "4,12x\x03" "99,99y", "xy", "one- and two-digit colours with backgrounds");
    strip_is("\x03" "123", "3", "a colour has at most two digits");
    strip_is("\x03" "4,x", ",x", "a comma without a digit after it is text");
    strip_is("\x03,5x", ",5x", "no foreground: the comma is text");
    strip_is("\x04" "FF00aa,00ff00hex\x04" "1z", "hexz", "hex colours");
    strip_is("a\x1d" "b\x1f" "c\x1e" "d\x11" "e\x16" "f\x0f" "g", "abcdefg", "every toggle");
    strip_is("end\x03", "end", "a code at the very end");
    strip_is("end\x03" "1,", "end,", "a colour then a trailing comma");
    strip_is("caf\xc3\xa9 \x03" "3\xe2\x9c\x93", "caf\xc3\xa9 \xe2\x9c\x93", "UTF-8 around codes is kept");
    {
        char buf[] = "\x02" "in\x03" "05 place";
        size_t n = crow_ircfmt_strip((const uint8_t *)buf, strlen(buf), (uint8_t *)buf);
        ok(n == 8 && !memcmp(buf, "in place", 8), "OUT may be IN");
    }
    is_int(crow_ircfmt_strip((const uint8_t *)"", 0, (uint8_t *)"x"), 0, "empty input");
    return tap_done();
}
