// Linux-only system calls behind plain C functions with a fallback elsewhere, as SwiftNIO's CNIOLinux
// shim does: Swift's Glibc module exports neither renameat2 nor sync_file_range, and a C declaration
// is checked by the compiler where a dlsym lookup would be an unchecked cast. The umask reader is
// here for speed (its comment says why).
#define _GNU_SOURCE
#include "ckpt_system.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int ckpt_rename_exchange(const char *from, const char *to) {
#if defined(__linux__) && defined(SYS_renameat2)
    // The system call rather than glibc's wrapper, which glibc before 2.28 lacks.
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE);
#else
    (void)from;
    (void)to;
    errno = ENOSYS;
    return -1;
#endif
}

int ckpt_start_writeback(int fd, int64_t offset, int64_t length) {
#if defined(__linux__)
    return sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
    (void)offset;
    (void)length;
    errno = ENOSYS;
    return -1;
#endif
}

int ckpt_current_umask(void) {
#if defined(__linux__)
    // Plain open and read into a stack buffer: this runs on every save, and reading the file
    // through Foundation and splitting it into lines took 50-60 µs a call, this 5-9 µs.
    // The file is about 1.5 KiB; Umask is its second line.
    char buffer[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t length = 0;
    while (length < sizeof buffer - 1) {
        ssize_t count = read(fd, buffer + length, sizeof buffer - 1 - length);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        length += (size_t)count;
    }
    close(fd);
    buffer[length] = 0;
    const char *line = strstr(buffer, "\nUmask:");
    if (line == NULL) return -1;
    const char *digit = line + strlen("\nUmask:");
    while (*digit == ' ' || *digit == '\t') digit++;
    int mask = 0, digits = 0;
    for (; *digit >= '0' && *digit <= '7' && digits < 4; digit++, digits++) mask = mask * 8 + (*digit - '0');
    return digits > 0 && (*digit == '\n' || *digit == 0) ? mask : -1;
#else
    return -1;
#endif
}
