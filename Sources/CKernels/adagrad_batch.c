// One optimizer step's dense updates as one parallel loop.
//
// Updating tensors one after another leaves a small tensor on one core while the others idle, and
// splitting each small tensor costs a synchronization per tensor. Here every tensor is cut into
// fixed-size chunks and the chunks of all tensors form one loop, so the threads stay busy across
// tensor boundaries and meet once per step. Chunks only choose which thread computes an element;
// the kernels round every element the same way whatever range they are given.
#include "ckpt_kernels.h"

typedef struct {
    const ckpt_adagrad_task *tasks;
    int64_t task_count;
    int64_t chunk;
} batch_loop;

static void run_range(const ckpt_adagrad_task *task, int64_t begin, int64_t end) {
    switch (task->scalar) {
    case CKPT_SCALAR_F32:
        ckpt_adagrad_f32(task->path, task->param, task->grad, task->sum, begin, end, &task->options);
        break;
    case CKPT_SCALAR_F64:
        ckpt_adagrad_f64(task->path, task->param, task->grad, task->sum, begin, end, &task->options);
        break;
    case CKPT_SCALAR_F16:
        ckpt_adagrad_f16(task->path, task->param, task->grad, task->sum, begin, end, &task->options);
        break;
    case CKPT_SCALAR_BF16:
        ckpt_adagrad_bf16(task->path, task->param, task->grad, task->sum, begin, end, &task->options);
        break;
    }
}

static void run_chunk(void *context, int64_t index) {
    const batch_loop *loop = context;
    // The last task starting at or before this chunk (tasks without elements start where the next begins).
    int64_t low = 0, high = loop->task_count - 1;
    while (low < high) {
        const int64_t middle = low + (high - low + 1) / 2;
        if (loop->tasks[middle].first_chunk <= index) low = middle;
        else high = middle - 1;
    }
    const ckpt_adagrad_task *task = &loop->tasks[low];
    const int64_t begin = (index - task->first_chunk) * loop->chunk;
    const int64_t end = task->count - begin > loop->chunk ? begin + loop->chunk : task->count;
    run_range(task, begin, end);
}

void ckpt_adagrad_batch(ckpt_adagrad_task *tasks, int64_t task_count, int64_t chunk, int64_t parallel_threshold) {
    if (task_count <= 0 || chunk <= 0) return;
    int64_t chunks = 0, elements = 0;
    for (int64_t index = 0; index < task_count; index++) {
        tasks[index].first_chunk = chunks;
        const int64_t count = tasks[index].count > 0 ? tasks[index].count : 0;
        chunks += count / chunk + (count % chunk != 0);
        elements += count;
    }
    batch_loop loop = {.tasks = tasks, .task_count = task_count, .chunk = chunk};
    if (elements < parallel_threshold) {
        for (int64_t index = 0; index < chunks; index++) run_chunk(&loop, index);
        return;
    }
    ckpt_parallel_for(chunks, run_chunk, &loop);
}
