/* Makes every fsync/fdatasync of a process take FLUSH_DELAY_US microseconds longer, to show
   what the send benchmark does on a disk whose flushes cost what they cost on most disks.
   bench/send.py --flush-ms N builds it and preloads it into both servers (Linux, a C compiler).

       cc -shared -fPIC -O2 -o slow_flush.so slow_flush.c -ldl                                */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void wait_for_the_disk(void) {
    static long delay_us = -1;
    if (delay_us < 0) {
        const char *value = getenv("FLUSH_DELAY_US");
        delay_us = value ? atol(value) : 0;
    }
    if (delay_us > 0) {
        struct timespec pause = {delay_us / 1000000, (delay_us % 1000000) * 1000};
        nanosleep(&pause, NULL);
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    wait_for_the_disk();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_for_the_disk();
    return real(fd);
}
