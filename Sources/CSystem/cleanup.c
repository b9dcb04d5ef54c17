// Removal of in-flight temporary files when the process ends by SIGHUP, SIGINT or SIGTERM, or
// through exit(). DurableFile registers each temporary name before creating the file and
// unregisters it after the rename or unlink; the handler unlinks what is registered.
//
// The handler may run on any thread, also while another thread is registering or releasing a slot,
// so it takes no lock and allocates nothing: the names live in fixed slots, each with a flag saying
// its name is complete and a generation bumped on every release. The handler copies a published
// name and unlinks the copy only if the slot's generation did not change meanwhile, so it never
// acts on a half-written or reused name.
#include "ckpt_system.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOT_COUNT 64
#define PATH_CAPACITY 4096

struct slot {
    atomic_int claimed;       // owned by a writer, from register to unregister
    atomic_int published;     // the name is complete: the handler may unlink it
    atomic_uint generation;   // bumped on every release
    char path[PATH_CAPACITY];
};

static struct slot slots[SLOT_COUNT];

int ckpt_cleanup_register(const char *path) {
    size_t length = strlen(path);
    if (length >= PATH_CAPACITY) return -1;
    for (int index = 0; index < SLOT_COUNT; index++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&slots[index].claimed, &expected, 1)) {
            memcpy(slots[index].path, path, length + 1);
            atomic_store(&slots[index].published, 1);
            return index;
        }
    }
    return -1;
}

void ckpt_cleanup_unregister(int slot) {
    if (slot < 0 || slot >= SLOT_COUNT) return;
    atomic_store(&slots[slot].published, 0);
    atomic_fetch_add(&slots[slot].generation, 1);
    atomic_store(&slots[slot].claimed, 0);
}

int ckpt_cleanup_registered_count(void) {
    int count = 0;
    for (int index = 0; index < SLOT_COUNT; index++) count += atomic_load(&slots[index].published) != 0;
    return count;
}

// Async-signal-safe: atomics on lock-free ints, a byte copy on the stack, unlink.
void ckpt_cleanup_remove_all(void) {
    char copy[PATH_CAPACITY];
    for (int index = 0; index < SLOT_COUNT; index++) {
        struct slot *slot = &slots[index];
        // A writer on another thread may release and reuse the slot while we copy; try again then.
        for (int attempt = 0; attempt < 8; attempt++) {
            unsigned generation = atomic_load(&slot->generation);
            if (!atomic_load(&slot->published)) break;
            size_t length = 0;
            while (length < PATH_CAPACITY - 1 && slot->path[length] != 0) {
                copy[length] = slot->path[length];
                length++;
            }
            copy[length] = 0;
            if (atomic_load(&slot->published) && atomic_load(&slot->generation) == generation) {
                unlink(copy);
                break;
            }
        }
    }
}

static const int handled_signals[] = {SIGHUP, SIGINT, SIGTERM};
#define HANDLED_COUNT (int)(sizeof handled_signals / sizeof handled_signals[0])
static struct sigaction previous_actions[HANDLED_COUNT];

static void on_signal(int signal_number, siginfo_t *info, void *context) {
    int saved_errno = errno;
    int index = 0;
    while (index < HANDLED_COUNT - 1 && handled_signals[index] != signal_number) index++;
    struct sigaction *previous = &previous_actions[index];
    if (previous->sa_flags & SA_SIGINFO) {
        // The host's handler decides what the signal means (it may save and carry on): its
        // in-flight writes are left alone.
        previous->sa_sigaction(signal_number, info, context);
    } else if (previous->sa_handler == SIG_IGN) {
        // Ignored before we were installed (only possible in the instant of installing).
    } else if (previous->sa_handler != SIG_DFL) {
        previous->sa_handler(signal_number);
    } else {
        // The default action ends the process: remove the temporary files, then let it.
        ckpt_cleanup_remove_all();
        struct sigaction fallback;
        memset(&fallback, 0, sizeof fallback);
        fallback.sa_handler = SIG_DFL;
        sigemptyset(&fallback.sa_mask);
        sigaction(signal_number, &fallback, NULL);
        // Blocked while this handler runs: delivered, with the default action, when it returns.
        raise(signal_number);
    }
    errno = saved_errno;
}

static void install(void) {
    for (int index = 0; index < HANDLED_COUNT; index++) {
        int signal_number = handled_signals[index];
        struct sigaction current;
        if (sigaction(signal_number, NULL, &current) != 0) continue;
        // An ignored signal does not end the process: nothing to clean up, nothing to change.
        if (!(current.sa_flags & SA_SIGINFO) && current.sa_handler == SIG_IGN) continue;
        previous_actions[index] = current;
        struct sigaction ours;
        memset(&ours, 0, sizeof ours);
        ours.sa_sigaction = on_signal;
        ours.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&ours.sa_mask);
        for (int other = 0; other < HANDLED_COUNT; other++) sigaddset(&ours.sa_mask, handled_signals[other]);
        struct sigaction replaced;
        if (sigaction(signal_number, &ours, &replaced) == 0) previous_actions[index] = replaced;
    }
    atexit(ckpt_cleanup_remove_all);
}

static pthread_once_t install_once = PTHREAD_ONCE_INIT;

void ckpt_cleanup_install(void) { pthread_once(&install_once, install); }
