// A small pool of worker threads for the kernels' parallel loops.
//
// One optimizer step updates many tensors back to back. Waking sleeping threads for each one costs
// as much as updating a 64K-element tensor, so workers spin for a while after each loop (as OpenMP's
// do, which is what torch uses) and only then sleep on a condition variable.
//
// A loop is published as a 64-bit ticket (generation << 32 | next index). Threads claim indices by
// compare-and-swap on the ticket. When a loop finishes, its ticket is closed (index UINT32_MAX)
// before the next loop's fields are written, so a late worker's claim on an old loop always fails.
// All atomics are sequentially consistent; the loop's fields are read only after its ticket.
#include "ckpt_kernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// About 300 µs of spinning: long enough to bridge the gap between two tensors of one step, short
// enough not to steal much from other processes when the machine is busy.
enum { SPIN_ROUNDS = 1 << 14, WAIT_SPINS_BEFORE_YIELD = 1 << 10, MAX_WORKERS = 63 };

typedef void (*ckpt_loop_body)(void *context, int64_t index);

static struct {
    pthread_once_t once;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    pthread_mutex_t submit;  // one loop at a time; other callers wait or run serially
    int workers;
    int sleepers;  // guarded by mutex
    _Atomic uint64_t ticket;
    _Atomic(ckpt_loop_body) body;
    _Atomic(void *) context;
    _Atomic int64_t count;
    _Atomic int64_t remaining;
} pool = {
    .once = PTHREAD_ONCE_INIT,
    .mutex = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .submit = PTHREAD_MUTEX_INITIALIZER,
};

static inline void spin_pause(void) {
#if defined(__x86_64__)
    _mm_pause();
#endif
}

static inline uint32_t generation_of(uint64_t ticket) { return (uint32_t)(ticket >> 32); }

// Claims and runs indices of the loop of `generation` until none is left.
static void run_indices(uint32_t generation) {
    const ckpt_loop_body body = atomic_load_explicit(&pool.body, memory_order_seq_cst);
    void *const context = atomic_load_explicit(&pool.context, memory_order_seq_cst);
    const int64_t count = atomic_load_explicit(&pool.count, memory_order_seq_cst);
    uint64_t ticket = atomic_load_explicit(&pool.ticket, memory_order_seq_cst);
    while (generation_of(ticket) == generation && (int64_t)(uint32_t)ticket < count) {
        if (atomic_compare_exchange_weak_explicit(&pool.ticket, &ticket, ticket + 1, memory_order_seq_cst,
                                                  memory_order_seq_cst)) {
            body(context, (int64_t)(uint32_t)ticket);
            atomic_fetch_sub_explicit(&pool.remaining, 1, memory_order_seq_cst);
            ticket = atomic_load_explicit(&pool.ticket, memory_order_seq_cst);
        }
    }
}

static void *worker_main(void *unused) {
    (void)unused;
    uint32_t seen = generation_of(atomic_load_explicit(&pool.ticket, memory_order_seq_cst));
    for (;;) {
        uint32_t current = seen;
        for (int round = 0; round < SPIN_ROUNDS && current == seen; round++) {
            spin_pause();
            current = generation_of(atomic_load_explicit(&pool.ticket, memory_order_seq_cst));
        }
        if (current == seen) {
            pthread_mutex_lock(&pool.mutex);
            pool.sleepers++;
            while ((current = generation_of(atomic_load_explicit(&pool.ticket, memory_order_seq_cst))) == seen)
                pthread_cond_wait(&pool.wake, &pool.mutex);
            pool.sleepers--;
            pthread_mutex_unlock(&pool.mutex);
        }
        seen = current;
        run_indices(seen);
    }
    return NULL;
}

static void start_pool(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int wanted = cpus > 1 ? (int)(cpus - 1) : 0;
    if (wanted > MAX_WORKERS) wanted = MAX_WORKERS;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    for (int index = 0; index < wanted; index++) {
        pthread_t thread;
        if (pthread_create(&thread, &attributes, worker_main, NULL) != 0) break;
        pool.workers++;
    }
    pthread_attr_destroy(&attributes);
}

int ckpt_thread_count(void) {
    pthread_once(&pool.once, start_pool);
    return pool.workers + 1;
}

void ckpt_parallel_for(int64_t count, void (*body)(void *context, int64_t index), void *context) {
    if (count <= 0) return;
    pthread_once(&pool.once, start_pool);
    // Serial when there is nobody to help, the count does not fit a ticket, or another loop (from
    // another thread, or nested in a body) holds the pool.
    if (pool.workers == 0 || count == 1 || count >= UINT32_MAX || pthread_mutex_trylock(&pool.submit) != 0) {
        for (int64_t index = 0; index < count; index++) body(context, index);
        return;
    }
    atomic_store_explicit(&pool.body, body, memory_order_seq_cst);
    atomic_store_explicit(&pool.context, context, memory_order_seq_cst);
    atomic_store_explicit(&pool.count, count, memory_order_seq_cst);
    atomic_store_explicit(&pool.remaining, count, memory_order_seq_cst);
    const uint32_t generation = generation_of(atomic_load_explicit(&pool.ticket, memory_order_seq_cst)) + 1;
    atomic_store_explicit(&pool.ticket, (uint64_t)generation << 32, memory_order_seq_cst);
    pthread_mutex_lock(&pool.mutex);
    if (pool.sleepers > 0) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mutex);
    run_indices(generation);
    // A worker holding the last chunk may have been preempted: stop spinning and let it run.
    for (int spins = 0; atomic_load_explicit(&pool.remaining, memory_order_seq_cst) > 0; spins++) {
        if (spins < WAIT_SPINS_BEFORE_YIELD) spin_pause();
        else sched_yield();
    }
    atomic_store_explicit(&pool.ticket, (uint64_t)generation << 32 | UINT32_MAX, memory_order_seq_cst);
    pthread_mutex_unlock(&pool.submit);
}
