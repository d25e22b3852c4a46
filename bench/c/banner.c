/* banner.c — the benchmark's service program: writes "220 crow banner\r\n" to stdout and
 * exits.  On x86-64 it is built without the C library (-nostdlib -static: two system calls,
 * no start-up work), so that the benchmark measures the servers, not libc initialisation;
 * elsewhere it is an ordinary C program. */
#if defined(__x86_64__) && defined(CROW_NOLIBC)
static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

void _start(void) __attribute__((noreturn));
void _start(void)
{
    static const char line[] = "220 crow banner\r\n";
    long r = sys3(1, 1, (long)line, sizeof line - 1);   /* write */
    sys3(60, r == (long)(sizeof line - 1) ? 0 : 1, 0, 0); /* exit */
    for (;;) ;
}
#else
#include <unistd.h>

int main(void)
{
    static const char line[] = "220 crow banner\r\n";
    return write(1, line, sizeof line - 1) == (ssize_t)(sizeof line - 1) ? 0 : 1;
}
#endif
