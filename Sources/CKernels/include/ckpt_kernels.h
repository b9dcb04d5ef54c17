#ifndef CKPT_KERNELS_H
#define CKPT_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Returns the kernel library's version, so Swift can check it linked the expected kernels.
int ckpt_kernels_version(void);

/// Which PyTorch Adagrad code path a kernel reproduces (each rounds differently).
typedef enum {
    CKPT_ADAGRAD_SINGLE_TENSOR = 0,
    CKPT_ADAGRAD_FOREACH = 1,
    CKPT_ADAGRAD_FUSED = 2,
} ckpt_adagrad_path;

/// The scalars of one Adagrad step, as torch passes them to its kernels.
typedef struct {
    /// The decayed learning rate `lr / (1 + (step - 1) * lr_decay)`, computed in double.
    double clr;
    double eps;
    double weight_decay;
    int32_t maximize;
    /// Elements in the whole tensor.
    int64_t numel;
    /// float16/bfloat16 with weight decay on the non-fused paths: the chunk length torch's
    /// at::parallel_for gives each thread for `grad.add(param, alpha=wd)`, and torch's vector length
    /// in elements; the scalar tail of each chunk rounds alpha differently (see adagrad.c).
    int64_t add_chunk;
    int32_t add_vector_length;
    /// Single-tensor path on a complex parameter: torch adds weight decay before viewing the
    /// tensors as real pairs, with complex arithmetic that rounds wd * param before the sum (no FMA).
    int32_t complex_weight_decay;
} ckpt_adagrad_options;

/// Bytes in one of torch's CPU vectors on this machine (64 with AVX-512, else 32), which decides
/// where the fused kernel's scalar tail starts.
int ckpt_torch_vector_bytes(void);

/// Updates elements [begin, end) of a float32 parameter and its accumulator in place.
/// `param`, `grad` and `sum` point at element 0 of contiguous tensors; ranges of one step may run concurrently.
void ckpt_adagrad_f32(ckpt_adagrad_path path, float *param, const float *grad, float *sum,
                      int64_t begin, int64_t end, const ckpt_adagrad_options *options);
/// The float64 variant of ``ckpt_adagrad_f32``.
void ckpt_adagrad_f64(ckpt_adagrad_path path, double *param, const double *grad, double *sum,
                      int64_t begin, int64_t end, const ckpt_adagrad_options *options);
/// The float16 variant (IEEE half bit patterns); arithmetic in float, rounded where torch rounds.
void ckpt_adagrad_f16(ckpt_adagrad_path path, uint16_t *param, const uint16_t *grad, uint16_t *sum,
                      int64_t begin, int64_t end, const ckpt_adagrad_options *options);
/// The bfloat16 variant (bit patterns); arithmetic in float, rounded where torch rounds.
void ckpt_adagrad_bf16(ckpt_adagrad_path path, uint16_t *param, const uint16_t *grad, uint16_t *sum,
                       int64_t begin, int64_t end, const ckpt_adagrad_options *options);

/// The element type of a batched update (complex tensors count as pairs of their real type).
typedef enum {
    CKPT_SCALAR_F32 = 0,
    CKPT_SCALAR_F64 = 1,
    CKPT_SCALAR_F16 = 2,
    CKPT_SCALAR_BF16 = 3,
} ckpt_scalar_type;

/// One tensor's dense update inside ``ckpt_adagrad_batch``.
typedef struct {
    ckpt_scalar_type scalar;
    ckpt_adagrad_path path;
    /// Element 0 of the contiguous parameter, gradient and accumulator, all of `scalar`.
    void *param;
    const void *grad;
    void *sum;
    /// Real scalars in the tensor.
    int64_t count;
    ckpt_adagrad_options options;
    /// Written by ckpt_adagrad_batch: the index of the tensor's first chunk.
    int64_t first_chunk;
} ckpt_adagrad_task;

/// Runs every task's update over [0, count), cutting the tasks into chunks of `chunk` elements
/// that one parallel loop spreads over the threads. Tasks must not write memory another task
/// reads or writes. Below `parallel_threshold` elements in all, runs on the calling thread.
void ckpt_adagrad_batch(ckpt_adagrad_task *tasks, int64_t task_count, int64_t chunk, int64_t parallel_threshold);

/// torch.sqrt of `values[0..<count]` in place, rounded as torch's CPU kernel (MKL's vsSqrt/vdSqrt,
/// not correctly rounded on some CPUs) rounds it on this machine.
void ckpt_torch_sqrt_f32(float *values, int64_t count);
/// The float64 variant of ``ckpt_torch_sqrt_f32``.
void ckpt_torch_sqrt_f64(double *values, int64_t count);

/// The instruction sets a kernel is compiled for. Every variant rounds identically; tests run them
/// side by side to check that.
typedef enum {
    CKPT_ISA_BEST = 0,      ///< the widest this CPU supports (what the plain entry points use)
    CKPT_ISA_BASELINE = 1,  ///< the build's baseline (SSE2 on x86-64)
    CKPT_ISA_AVX2 = 2,      ///< AVX2 with FMA and F16C
    CKPT_ISA_AVX512 = 3,    ///< AVX-512 F/VL/BW/DQ
} ckpt_isa;

/// True if this CPU can run kernels compiled for `isa` (an unavailable one falls back to narrower).
int ckpt_isa_available(ckpt_isa isa);

/// The Adagrad kernels above, run with the variant compiled for `isa`.
void ckpt_adagrad_f32_isa(ckpt_isa isa, ckpt_adagrad_path path, float *param, const float *grad, float *sum,
                          int64_t begin, int64_t end, const ckpt_adagrad_options *options);
void ckpt_adagrad_f64_isa(ckpt_isa isa, ckpt_adagrad_path path, double *param, const double *grad, double *sum,
                          int64_t begin, int64_t end, const ckpt_adagrad_options *options);
void ckpt_adagrad_f16_isa(ckpt_isa isa, ckpt_adagrad_path path, uint16_t *param, const uint16_t *grad,
                          uint16_t *sum, int64_t begin, int64_t end, const ckpt_adagrad_options *options);
void ckpt_adagrad_bf16_isa(ckpt_isa isa, ckpt_adagrad_path path, uint16_t *param, const uint16_t *grad,
                           uint16_t *sum, int64_t begin, int64_t end, const ckpt_adagrad_options *options);

/// Threads a parallel loop can use: the caller plus the library's worker threads (one per other CPU).
int ckpt_thread_count(void);

/// Runs `body(context, index)` for every index in [0, count), spread over the calling thread and
/// the library's worker threads; returns when all have finished. Runs serially when another
/// parallel loop is in progress (including a call from inside `body`).
void ckpt_parallel_for(int64_t count, void (*body)(void *context, int64_t index), void *context);

#endif
