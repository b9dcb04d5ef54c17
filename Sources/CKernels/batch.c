// One optimizer step's dense updates as one parallel loop.
//
// Updating tensors one after another leaves a small tensor on one core while the others idle, and
// splitting each small tensor costs a synchronization per tensor. Here every tensor is cut into
// fixed-size chunks and the chunks of all tensors form one loop, so the threads stay busy across
// tensor boundaries and meet once per step. Chunks only choose which thread computes an element;
// the kernels round every element the same way whatever range they are given.
#include "ckpt_kernels.h"

typedef struct {
    const ckpt_batch_item *items;
    int64_t item_count;
    int64_t chunk;
} batch_loop;

static void run_chunk(void *context, int64_t index) {
    const batch_loop *loop = context;
    // The last item starting at or before this chunk (items without elements start where the next begins).
    int64_t low = 0, high = loop->item_count - 1;
    while (low < high) {
        const int64_t middle = low + (high - low + 1) / 2;
        if (loop->items[middle].first_chunk <= index) low = middle;
        else high = middle - 1;
    }
    const ckpt_batch_item *item = &loop->items[low];
    const int64_t begin = (index - item->first_chunk) * loop->chunk;
    const int64_t end = item->count - begin > loop->chunk ? begin + loop->chunk : item->count;
    item->run(item->task, begin, end);
}

void ckpt_run_batch(ckpt_batch_item *items, int64_t item_count, int64_t chunk, int64_t parallel_threshold) {
    if (item_count <= 0 || chunk <= 0) return;
    int64_t chunks = 0, elements = 0;
    for (int64_t index = 0; index < item_count; index++) {
        items[index].first_chunk = chunks;
        const int64_t count = items[index].count > 0 ? items[index].count : 0;
        chunks += count / chunk + (count % chunk != 0);
        elements += count;
    }
    batch_loop loop = {.items = items, .item_count = item_count, .chunk = chunk};
    if (elements < parallel_threshold) {
        for (int64_t index = 0; index < chunks; index++) run_chunk(&loop, index);
        return;
    }
    ckpt_parallel_for(chunks, run_chunk, &loop);
}
