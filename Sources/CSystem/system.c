// Linux-only system calls behind plain C functions with a fallback elsewhere, as SwiftNIO's CNIOLinux
// shim does: Swift's Glibc module exports neither call, and a C declaration is checked by the
// compiler where a dlsym lookup would be an unchecked cast.
#define _GNU_SOURCE
#include "ckpt_system.h"
#include <errno.h>
#include <fcntl.h>
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
