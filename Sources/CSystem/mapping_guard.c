// Read faults in file mappings turned into an error instead of a crash.
//
// Touching a page of a mapped file that lies past the file's current end raises SIGBUS. That
// happens when the file is truncated after it was mapped, or rewritten in place (torch.save opens
// its output with O_TRUNC, then writes it again): a user re-saving over a checkpoint that a
// process has open would kill that process.
//
// The handler does not jump out of the fault (sigsetjmp/siglongjmp): mapped bytes are read by
// Swift code as well as by C (tensor element loops, the closures given to withUnsafeBytes, the
// writer), and a longjmp may only cross C frames; jumping over Swift frames skips their releases
// and defers. Instead it maps anonymous zero pages over the faulting page and the rest of that
// mapping, marks the mapping as faulted, and returns: the faulting instruction runs again and reads
// zeros, and every reader checks the mark once it is done reading and reports the file as
// truncated. Nothing is added to the path of a read that does not fault (no per-read setup, no
// system call): the cost is one flag load per read.
//
// The handler finds the mapping without locks or allocation: mappings live in chunks of fixed
// slots that are never freed, a slot's start address is published last and cleared first.
#include "ckpt_system.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK_SLOTS 256

struct ckpt_mapping {
    atomic_int claimed;      // owned by a mapping, from register to unregister
    atomic_uintptr_t start;  // 0 while not published
    atomic_size_t length;
    atomic_int faulted;
};

struct chunk {
    struct ckpt_mapping slots[CHUNK_SLOTS];
    _Atomic(struct chunk *) next;
};

static struct chunk first_chunk;
static uintptr_t page_size = 4096;
static struct sigaction previous_action;

static struct ckpt_mapping *claim(void) {
    struct chunk *chunk = &first_chunk;
    for (;;) {
        for (int index = 0; index < CHUNK_SLOTS; index++) {
            int expected = 0;
            if (atomic_compare_exchange_strong(&chunk->slots[index].claimed, &expected, 1)) return &chunk->slots[index];
        }
        struct chunk *next = atomic_load(&chunk->next);
        if (next == NULL) {
            struct chunk *fresh = calloc(1, sizeof *fresh);
            if (fresh == NULL) return NULL;
            // Another thread may append first: then use its chunk and drop ours.
            if (!atomic_compare_exchange_strong(&chunk->next, &next, fresh)) {
                free(fresh);
            } else {
                next = fresh;
            }
        }
        chunk = next;
    }
}

struct ckpt_mapping *ckpt_mapping_register(const void *start, size_t length) {
    if (start == NULL || length == 0) return NULL;
    struct ckpt_mapping *mapping = claim();
    if (mapping == NULL) return NULL;
    atomic_store(&mapping->faulted, 0);
    atomic_store(&mapping->length, length);
    atomic_store(&mapping->start, (uintptr_t)start);
    return mapping;
}

void ckpt_mapping_unregister(struct ckpt_mapping *mapping) {
    if (mapping == NULL) return;
    atomic_store(&mapping->start, 0);
    atomic_store(&mapping->claimed, 0);
}

int ckpt_mapping_faulted(const struct ckpt_mapping *mapping) {
    return mapping != NULL && atomic_load(&((struct ckpt_mapping *)mapping)->faulted) != 0;
}

// Async-signal-safe: atomic loads, mmap (a plain system call on the systems this runs on).
static int patch(uintptr_t address) {
    for (struct chunk *chunk = &first_chunk; chunk != NULL; chunk = atomic_load(&chunk->next)) {
        for (int index = 0; index < CHUNK_SLOTS; index++) {
            struct ckpt_mapping *mapping = &chunk->slots[index];
            uintptr_t start = atomic_load(&mapping->start);
            if (start == 0 || address < start) continue;
            size_t length = atomic_load(&mapping->length);
            // Republished meanwhile (another mapping at another address): not this one.
            if (address - start >= length || atomic_load(&mapping->start) != start) continue;
            uintptr_t first = address & ~(page_size - 1);
            uintptr_t end = (start + length + page_size - 1) & ~(page_size - 1);
            void *zeros = mmap((void *)first, end - first, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (zeros == MAP_FAILED) return 0;
            atomic_store(&mapping->faulted, 1);
            return 1;
        }
    }
    return 0;
}

static void on_fault(int signal_number, siginfo_t *info, void *context) {
    int saved_errno = errno;
    // si_code > 0: raised by the kernel for a fault, not sent by kill or raise.
    if (info != NULL && info->si_code > 0 && patch((uintptr_t)info->si_addr)) {
        errno = saved_errno;
        return;
    }
    errno = saved_errno;
    // Not a file we mapped: whoever handled SIGBUS before decides.
    if (previous_action.sa_flags & SA_SIGINFO) {
        previous_action.sa_sigaction(signal_number, info, context);
    } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
        previous_action.sa_handler(signal_number);
    } else {
        // Returning runs the faulting instruction again, which now ends the process as it would
        // have without us (an ignored SIGBUS from a fault cannot be ignored either).
        struct sigaction fallback;
        memset(&fallback, 0, sizeof fallback);
        fallback.sa_handler = SIG_DFL;
        sigemptyset(&fallback.sa_mask);
        sigaction(signal_number, &fallback, NULL);
    }
}

static void install(void) {
    long size = sysconf(_SC_PAGESIZE);
    if (size > 0 && (size & (size - 1)) == 0) page_size = (uintptr_t)size;
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = on_fault;
    // SA_ONSTACK: a thread with an alternate signal stack keeps using it.
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&ours.sa_mask);
    sigaction(SIGBUS, &ours, &previous_action);
}

static pthread_once_t install_once = PTHREAD_ONCE_INIT;

void ckpt_mapping_guard_install(void) { pthread_once(&install_once, install); }
