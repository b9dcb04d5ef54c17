#ifndef CKPT_SYSTEM_H
#define CKPT_SYSTEM_H
#include <stdint.h>

/// Atomically exchanges the names `from` and `to` (Linux renameat2 with RENAME_EXCHANGE).
/// Returns 0, or -1 with errno set; ENOSYS where the system has no such call.
int ckpt_rename_exchange(const char *from, const char *to);

/// Starts writeback of [offset, offset + length) of `fd` without waiting for it (Linux
/// sync_file_range with SYNC_FILE_RANGE_WRITE). Returns 0, or -1 with errno set; ENOSYS elsewhere.
int ckpt_start_writeback(int fd, int64_t offset, int64_t length);

#endif
