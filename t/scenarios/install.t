#!/usr/bin/env bash
# install.t — `make install PREFIX=/usr/local DESTDIR=...` puts programs, libraries, headers,
# example configs and man pages in place, and the installed programs run.
set -u
cd "${CROW_ROOT:-$(dirname "$0")/../..}"
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
dest=$(mktemp -d /tmp/crow-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
make --no-print-directory install PREFIX=/usr/local DESTDIR="$dest" >"$dest.log" 2>&1
check "make install succeeds" '[ $? = 0 ] || { sed "s/^/# /" "$dest.log"; false; }'
p=$dest/usr/local
for prog in $(ls build/bin | grep -v "\\."); do
  check "program $prog installed" "[ -x '$p/bin/$prog' ]"
  check "man page for $prog installed" "[ -f '$p/share/man/man1/$prog.1' ]"
done
check "libcrowcore.a installed" "[ -f '$p/lib/libcrowcore.a' ]"
check "libcrowcore.so installed" "[ -f '$p/lib/libcrowcore.so' ]"
check "headers installed" "[ -f '$p/include/crow/crow.h' ] && [ -f '$p/include/crow/fdio.h' ]"
check "example configs installed (not the make run start files)" "[ -f '$p/share/crow/examples/echo.conf' ] && [ ! -e '$p/share/crow/examples/run.d' ]"
check "installed crow-sh runs" "[ \"\$('$p/bin/crow-sh' -e '(+ 20 22)')\" = 42 ]"
check "installed man page renders" "man -l '$p/share/man/man1/crow-sh.1' 2>/dev/null | grep -q 'crow-sh'"
# A C program links the installed static library.
cat > "$dest/use.c" <<'C'
#include <crow.h>
#include <fdio.h>
#include <string.h>
int main(void) { return strcmp(crow_version(), CROW_VERSION) != 0 || crow_fd_write_all(1, "linked\n", 7, 0) != 7; }
C
check "a C program builds against the installed header and libcrowcore.a" "gcc -I'$p/include/crow' '$dest/use.c' '$p/lib/libcrowcore.a' -o '$dest/use' && [ \"\$('$dest/use')\" = linked ]"
# libmmstat alone: its header and static library, nothing else needed.
cat > "$dest/ms.c" <<'C'
#include <mmstat.h>
#include <stdio.h>
int main(void) { mmstat_t *m = mmstat_open("/nonexistent"); puts(m ? "open" : "no server"); return 0; }
C
check "a C program builds against the installed mmstat.h and libmmstat.a" "gcc -I'$p/include' '$dest/ms.c' '$p/lib/libmmstat.a' -o '$dest/ms' && [ \"\$('$dest/ms')\" = 'no server' ]"
rm -f "$dest.log"
echo "1..$n"
