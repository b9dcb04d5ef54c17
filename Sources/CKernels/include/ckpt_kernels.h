#ifndef CKPT_KERNELS_H
#define CKPT_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Returns the kernel library's version, so Swift can check it linked the expected kernels.
int ckpt_kernels_version(void);

/// Which of PyTorch's code paths for an optimizer a kernel reproduces (each rounds differently).
typedef enum {
    CKPT_PATH_SINGLE_TENSOR = 0,  ///< foreach=False: one ATen op per tensor per formula step
    CKPT_PATH_FOREACH = 1,        ///< foreach=True: the _foreach_* ops
    CKPT_PATH_FUSED = 2,          ///< fused=True: the optimizer's fused CPU kernel
} ckpt_optimizer_path;

/// The instruction sets a kernel is compiled for. Every variant rounds identically; tests run them
/// side by side to check that.
typedef enum {
    CKPT_ISA_BEST = 0,      ///< the widest this CPU supports, capped by the CKPT_ISA environment variable
    CKPT_ISA_BASELINE = 1,  ///< the build's baseline (SSE2 on x86-64; the only variant elsewhere)
    CKPT_ISA_AVX2 = 2,      ///< AVX2 with FMA and F16C
    CKPT_ISA_AVX512 = 3,    ///< AVX-512 F/VL/BW/DQ
} ckpt_isa;

/// True if this CPU can run kernels compiled for `isa`.
int ckpt_isa_available(ckpt_isa isa);
/// The variant CKPT_ISA_BEST runs: the widest available, capped by the environment variable
/// CKPT_ISA (`avx512`, `avx2` or `baseline`), which is read once.
ckpt_isa ckpt_isa_selected(void);
/// The variant that runs for `requested`: the selected one for CKPT_ISA_BEST, else `requested` or,
/// if this CPU lacks it, the widest narrower variant it has.
ckpt_isa ckpt_isa_resolve(ckpt_isa requested);

/// How torch.sqrt rounds float32/float64 on a CPU: MKL's vsSqrt/vdSqrt kernels are not correctly
/// rounded, and which one runs depends on the CPU vendor and the instruction set MKL may use.
typedef enum {
    CKPT_SQRT_EXACT = 0,        ///< correctly rounded (no MKL, as on arm64)
    CKPT_SQRT_MKL_SSE_F32 = 1,  ///< MKL's SSE float32 kernel (non-Intel x86): rsqrtps estimate
    CKPT_SQRT_MKL_AVX2_F64 = 2, ///< MKL's SSE/AVX2 float64 kernel (x86 but Intel AVX-512): rsqrtps estimate
    CKPT_SQRT_MKL_AVX512 = 3,   ///< MKL's AVX-512 kernels (Intel with AVX-512): rsqrt14 estimate
    CKPT_SQRT_MKL_AVX2_F32 = 4, ///< MKL's AVX2 float32 kernel (Intel without AVX-512): rsqrtps estimate
} ckpt_torch_sqrt_kind;

/// Who made the CPU, as far as it changes torch's results (rsqrtps estimates differ by vendor).
typedef enum {
    CKPT_VENDOR_NOT_X86 = 0,
    CKPT_VENDOR_INTEL = 1,
    CKPT_VENDOR_AMD = 2,
    CKPT_VENDOR_OTHER_X86 = 3,
} ckpt_cpu_vendor;

/// This CPU's vendor.
ckpt_cpu_vendor ckpt_cpu_vendor_id(void);

/// What torch's CPU results depend on, so the kernels can reproduce torch run on one kind of machine.
typedef struct {
    ckpt_torch_sqrt_kind sqrt_f32;
    ckpt_torch_sqrt_kind sqrt_f64;
    /// The vendor whose rsqrtps the MKL_SSE/MKL_AVX2 kinds reproduce.
    ckpt_cpu_vendor estimate_vendor;
} ckpt_torch_rounding;

/// torch's rounding on a CPU of `vendor` where MKL may use AVX-512 (`mkl_avx512`).
ckpt_torch_rounding ckpt_torch_rounding_for(ckpt_cpu_vendor vendor, int mkl_avx512);
/// torch's rounding on this CPU with torch's defaults.
ckpt_torch_rounding ckpt_torch_rounding_native(void);
/// True if this CPU can reproduce torch's square roots of `kind` as computed on a CPU of
/// `estimate_vendor` (rsqrt14 needs AVX-512; rsqrtps estimates need the same vendor).
int ckpt_torch_sqrt_reproducible(ckpt_torch_sqrt_kind kind, ckpt_cpu_vendor estimate_vendor);

/// The scalars of one Adagrad step, as torch passes them to its kernels, and how to round them.
typedef struct {
    /// The decayed learning rate `lr / (1 + (step - 1) * lr_decay)`, computed in double.
    double clr;
    double eps;
    double weight_decay;
    int32_t maximize;
    /// Elements in the whole tensor.
    int64_t numel;
    /// float16/bfloat16 with weight decay on the non-fused paths: the chunk length torch's
    /// at::parallel_for gives each thread for `grad.add(param, alpha=wd)`; the scalar tail of each
    /// chunk rounds alpha differently (see adagrad.c).
    int64_t add_chunk;
    /// Single-tensor path on a complex parameter: torch adds weight decay before viewing the
    /// tensors as real pairs, with complex arithmetic that rounds wd * param before the sum (no FMA).
    int32_t complex_weight_decay;
    /// torch.sqrt's rounding on the non-fused float32/float64 paths.
    ckpt_torch_sqrt_kind sqrt_f32_kind;
    ckpt_torch_sqrt_kind sqrt_f64_kind;
    /// The instruction-set variant to run (CKPT_ISA_BEST: ckpt_isa_selected()).
    ckpt_isa isa;
} ckpt_adagrad_options;

/// Updates elements [begin, end) of a float32 parameter and its accumulator in place.
/// `param`, `grad` and `sum` point at element 0 of contiguous tensors; ranges of one step may run concurrently.
void ckpt_adagrad_f32(ckpt_optimizer_path path, float *param, const float *grad, float *sum,
                      int64_t begin, int64_t end, const ckpt_adagrad_options *options);
/// The float64 variant of ``ckpt_adagrad_f32``.
void ckpt_adagrad_f64(ckpt_optimizer_path path, double *param, const double *grad, double *sum,
                      int64_t begin, int64_t end, const ckpt_adagrad_options *options);
/// The float16 variant (IEEE half bit patterns); arithmetic in float, rounded where torch rounds.
void ckpt_adagrad_f16(ckpt_optimizer_path path, uint16_t *param, const uint16_t *grad, uint16_t *sum,
                      int64_t begin, int64_t end, const ckpt_adagrad_options *options);
/// The bfloat16 variant (bit patterns); arithmetic in float, rounded where torch rounds.
void ckpt_adagrad_bf16(ckpt_optimizer_path path, uint16_t *param, const uint16_t *grad, uint16_t *sum,
                       int64_t begin, int64_t end, const ckpt_adagrad_options *options);

/// The element type of a batched update (complex tensors count as pairs of their real type).
typedef enum {
    CKPT_SCALAR_F32 = 0,
    CKPT_SCALAR_F64 = 1,
    CKPT_SCALAR_F16 = 2,
    CKPT_SCALAR_BF16 = 3,
} ckpt_scalar_type;

/// One tensor's Adagrad update, as a batch item runs it (``ckpt_adagrad_task_range``).
typedef struct {
    ckpt_scalar_type scalar;
    ckpt_optimizer_path path;
    /// Element 0 of the contiguous parameter, gradient and accumulator, all of `scalar`.
    void *param;
    const void *grad;
    void *sum;
    ckpt_adagrad_options options;
} ckpt_adagrad_task;

/// Updates elements [begin, end) of the ``ckpt_adagrad_task`` at `task`.
void ckpt_adagrad_task_range(const void *task, int64_t begin, int64_t end);

/// One tensor's share of ``ckpt_run_batch``: `run(task, begin, end)` updates its elements [begin, end).
typedef struct {
    void (*run)(const void *task, int64_t begin, int64_t end);
    const void *task;
    /// Elements (real scalars) in the tensor.
    int64_t count;
    /// Written by ckpt_run_batch: the index of the tensor's first chunk.
    int64_t first_chunk;
} ckpt_batch_item;

/// Runs every item over [0, count), cutting the items into chunks of `chunk` elements that one
/// parallel loop spreads over the threads. Items must not write memory another item reads or
/// writes. Below `parallel_threshold` elements in all, runs on the calling thread.
void ckpt_run_batch(ckpt_batch_item *items, int64_t item_count, int64_t chunk, int64_t parallel_threshold);

/// The scalars of one SGD step, as torch passes them to its kernels, and the flags that decide
/// how torch rounds them on each path (see sgd.c).
typedef struct {
    double lr;
    double momentum;
    double dampening;
    double weight_decay;
    int32_t maximize;
    int32_t nesterov;
    /// The momentum buffer holds nothing yet: it becomes this step's (decayed) gradient.
    int32_t first_step;
    /// Complex parameters as pairs of reals: torch's complex arithmetic forms no FMA.
    int32_t complex;
    /// foreach with nesterov, no maximize and no weight decay: torch's _foreach_add_ writes
    /// `grad + momentum * buf` into the gradient tensors themselves; so does the kernel.
    int32_t write_grad;
    /// Elements in the whole tensor (real scalars).
    int64_t numel;
    /// float16/bfloat16 on the non-fused paths: the chunk length torch's at::parallel_for gives
    /// each thread for an elementwise op (its scalar tails round `add(alpha:)` differently).
    int64_t add_chunk;
    /// The instruction-set variant to run (CKPT_ISA_BEST: ckpt_isa_selected()).
    ckpt_isa isa;
} ckpt_sgd_options;

/// Updates elements [begin, end) of a float32 parameter (and its momentum buffer, NULL when
/// momentum is 0) in place. Pointers address element 0 of contiguous tensors; `grad` is written
/// only with `write_grad`.
void ckpt_sgd_f32(ckpt_optimizer_path path, float *param, float *grad, float *momentum_buffer,
                  int64_t begin, int64_t end, const ckpt_sgd_options *options);
/// The float64 variant of ``ckpt_sgd_f32``.
void ckpt_sgd_f64(ckpt_optimizer_path path, double *param, double *grad, double *momentum_buffer,
                  int64_t begin, int64_t end, const ckpt_sgd_options *options);
/// The float16 variant (bit patterns).
void ckpt_sgd_f16(ckpt_optimizer_path path, uint16_t *param, uint16_t *grad, uint16_t *momentum_buffer,
                  int64_t begin, int64_t end, const ckpt_sgd_options *options);
/// The bfloat16 variant (bit patterns).
void ckpt_sgd_bf16(ckpt_optimizer_path path, uint16_t *param, uint16_t *grad, uint16_t *momentum_buffer,
                   int64_t begin, int64_t end, const ckpt_sgd_options *options);

/// One tensor's SGD update, as a batch item runs it (``ckpt_sgd_task_range``).
typedef struct {
    ckpt_scalar_type scalar;
    ckpt_optimizer_path path;
    void *param;
    void *grad;
    /// NULL when momentum is 0.
    void *momentum_buffer;
    ckpt_sgd_options options;
} ckpt_sgd_task;

/// Updates elements [begin, end) of the ``ckpt_sgd_task`` at `task`.
void ckpt_sgd_task_range(const void *task, int64_t begin, int64_t end);

/// torch.sqrt of `values[0..<count]` in place, rounded as torch's CPU kernel of `kind` rounds it.
void ckpt_torch_sqrt_f32(float *values, int64_t count, ckpt_torch_sqrt_kind kind);
/// The float64 variant of ``ckpt_torch_sqrt_f32``.
void ckpt_torch_sqrt_f64(double *values, int64_t count, ckpt_torch_sqrt_kind kind);

/// Threads a parallel loop can use: the caller plus the library's worker threads (one per other CPU).
int ckpt_thread_count(void);

/// Runs `body(context, index)` for every index in [0, count), spread over the calling thread and
/// the library's worker threads; returns when all have finished. Runs serially when another
/// parallel loop is in progress (including a call from inside `body`).
void ckpt_parallel_for(int64_t count, void (*body)(void *context, int64_t index), void *context);

#endif
