#ifndef CKPT_SYSTEM_H
#define CKPT_SYSTEM_H
#include <stddef.h>
#include <stdint.h>

/// Atomically exchanges the names `from` and `to` (Linux renameat2 with RENAME_EXCHANGE).
/// Returns 0, or -1 with errno set; ENOSYS where the system has no such call.
int ckpt_rename_exchange(const char *from, const char *to);

/// Starts writeback of [offset, offset + length) of `fd` without waiting for it (Linux
/// sync_file_range with SYNC_FILE_RANGE_WRITE). Returns 0, or -1 with errno set; ENOSYS elsewhere.
int ckpt_start_writeback(int fd, int64_t offset, int64_t length);

/// The process's file mode creation mask, read from the `Umask:` line of /proc/self/status (Linux
/// 4.7 and later), which reads it without setting it: umask(2) can only read by writing, and a
/// thread that creates a file in between would get the wrong mode. Returns -1 where there is no
/// such line (another system, an older kernel, /proc not mounted).
int ckpt_current_umask(void);

/// Registers a temporary file's name (made absolute by the caller) for removal if the process is
/// ended by SIGHUP, SIGINT or SIGTERM, or exits through exit(). Call before creating the file.
/// Returns the slot to unregister, or -1 when all 64 slots are taken or the name is 4096 bytes or
/// longer (the file is then not removed on a signal).
int ckpt_cleanup_register(const char *path);

/// Releases a slot from ckpt_cleanup_register (after the file is renamed or unlinked); -1 is ignored.
void ckpt_cleanup_unregister(int slot);

/// The number of names registered now.
int ckpt_cleanup_registered_count(void);

/// Unlinks every registered name; async-signal-safe.
void ckpt_cleanup_remove_all(void);

/// Installs, once per process, the handler for SIGHUP, SIGINT and SIGTERM that removes the
/// registered files before the signal's default action ends the process, and an atexit hook that
/// removes them on exit(). A signal the process ignores is left ignored. A handler installed before
/// is kept and called instead (the host decides what the signal means; its in-flight files are left
/// alone). A handler installed afterwards replaces this one.
void ckpt_cleanup_install(void);

/// A read-only file mapping watched for read faults (mapping_guard.c).
struct ckpt_mapping;

/// Installs, once per process, the SIGBUS handler that turns a read fault in a registered mapping
/// (its file shrank since it was mapped) into zero pages and a mark (ckpt_mapping_faulted), and
/// passes any other SIGBUS to the handler installed before it, or to the default action. A handler
/// installed afterwards replaces this one.
void ckpt_mapping_guard_install(void);

/// Registers [start, start + length) of a file mapping. Returns the handle to query and release,
/// or NULL (length 0, or no memory for the table): the mapping is then not guarded.
struct ckpt_mapping *ckpt_mapping_register(const void *start, size_t length);

/// Releases a handle before the mapping is unmapped; NULL is ignored.
void ckpt_mapping_unregister(struct ckpt_mapping *mapping);

/// Nonzero once a read in the mapping has faulted: from then on, the rest of the mapping from the
/// faulting page on reads as zeros.
int ckpt_mapping_faulted(const struct ckpt_mapping *mapping);

#endif
