// SGD update kernels that round exactly as PyTorch's CPU paths do (torch/optim/sgd.py and
// aten/src/ATen/native/cpu/FusedSGDKernel.cpp in torch 2.15), on kernel_support.h's FMAs,
// conversions and instruction-set variants.
//
// Non-fused paths, one ATen op per line of _single_tensor_sgd / _multi_tensor_sgd:
//     g = maximize ? -grad : grad
//     g = g.add(param, alpha=wd)                      (wd != 0)
//     buf = clone(g)                                  (first step)
//     buf = buf.mul_(momentum).add_(g, alpha=1 - dampening)
//     g = g.add(buf, alpha=momentum) if nesterov else buf
//     param.add_(g, alpha=-lr)
// `add` is one FMA (float32/float64; complex arithmetic forms none); `mul_` takes the scalar as
// float, but foreach's in-place _foreach_mul_ casts it to the tensor's type first. For
// float16/bfloat16 every op rounds its result, `add` casts alpha to the type, and its scalar
// tails round the product first (CKPT_REDUCED_ADD).
//
// Fused path: the whole element in the tensor's type (float for float16/bfloat16), scalars as
// the type (float for the 2-byte types, never rounded to them), rounding only what it stores.
// torch 2.15 runs the AVX2 build of the kernel even on AVX-512 CPUs (it registers none for
// AVX-512), whose vector loop computes the momentum buffer as fma(1 - dampening, g, buf * m) and
// whose scalar tail (the last numel mod 32/sizeof(T) elements: thread chunks are whole cache
// lines) as fma(buf, m, g * (1 - dampening)), read from its machine code and checked against it.
#include "kernel_support.h"

/// Elements the fused kernel's AVX2 vector loop takes per iteration for `item` bytes per element.
CKPT_INLINE int64_t fused_vector(int64_t item) { return 32 / item; }

/// Runs FUSED(param, grad, buf, begin, end, o, has_m, first, tail) over [begin, end) with constant
/// flags: with momentum after the first step, the part in the kernel's scalar tail (the last
/// numel mod VECTOR elements) separately, as it rounds the buffer update differently.
#define CKPT_SGD_FUSED_RUNS(FUSED, VECTOR)                                                                \
    do {                                                                                                  \
        const int64_t tail_start = o->numel - o->numel % (VECTOR);                                        \
        const int64_t split = end < tail_start ? end : begin > tail_start ? begin : tail_start;           \
        switch (has_m * 2 + first) {                                                                      \
        case 0:                                                                                           \
        case 1: FUSED(param, grad, buf, begin, end, o, 0, 0, 0); break;                                   \
        case 2:                                                                                           \
            FUSED(param, grad, buf, begin, split, o, 1, 0, 0);                                            \
            FUSED(param, grad, buf, split, end, o, 1, 0, 1);                                              \
            break;                                                                                        \
        default: FUSED(param, grad, buf, begin, end, o, 1, 1, 0); break;                                  \
        }                                                                                                 \
    } while (0)

// MARK: float32 / float64

// NAME##_madd(a, b, c) is a * b + c as the op computes it: one FMA, or for complex tensors the
// product rounded and then the sum. Flags are parameters of always-inline functions, called with
// constants by the switches below, so each combination compiles to its own branch-free loop.
#define CKPT_DEFINE_REAL_SGD(NAME, T, FMA)                                                                \
    CKPT_INLINE T NAME##_madd(T a, T b, T c, int complex) { return complex ? c + a * b : FMA(a, b, c); }  \
    CKPT_INLINE void NAME##_unfused(T *restrict param, T *restrict grad, T *restrict buf, int64_t begin, \
                                    int64_t end, const ckpt_sgd_options *o, int has_m, int first,         \
                                    int complex) {                                                        \
        const T wd = (T)o->weight_decay, m = (T)o->momentum, damp = (T)(1.0 - o->dampening);              \
        const T mlr = (T)(-o->lr);                                                                        \
        const int has_wd = o->weight_decay != 0.0, maximize = o->maximize != 0;                           \
        const int nesterov = o->nesterov != 0, write_grad = o->write_grad != 0;                           \
        for (int64_t i = begin; i < end; i++) {                                                           \
            T g = maximize ? -grad[i] : grad[i];                                                          \
            if (has_wd) g = NAME##_madd(param[i], wd, g, complex);                                        \
            if (has_m) {                                                                                  \
                const T b = first ? g : NAME##_madd(g, damp, buf[i] * m, complex);                        \
                buf[i] = b;                                                                               \
                if (nesterov) {                                                                           \
                    g = NAME##_madd(b, m, g, complex);                                                    \
                    if (write_grad) grad[i] = g;                                                          \
                } else {                                                                                  \
                    g = b;                                                                                \
                }                                                                                         \
            }                                                                                             \
            param[i] = NAME##_madd(g, mlr, param[i], complex);                                            \
        }                                                                                                 \
    }                                                                                                     \
    CKPT_INLINE void NAME##_fused(T *restrict param, const T *restrict grad, T *restrict buf,             \
                                  int64_t begin, int64_t end, const ckpt_sgd_options *o, int has_m,       \
                                  int first, int tail) {                                                  \
        const T wd = (T)o->weight_decay, m = (T)o->momentum, damp = (T)(1.0 - o->dampening);              \
        const T mlr = (T)(-o->lr);                                                                        \
        const int has_wd = o->weight_decay != 0.0, maximize = o->maximize != 0;                           \
        const int nesterov = o->nesterov != 0;                                                            \
        for (int64_t i = begin; i < end; i++) {                                                           \
            T g = maximize ? -grad[i] : grad[i];                                                          \
            if (has_wd) g = FMA(param[i], wd, g);                                                         \
            if (has_m) {                                                                                  \
                const T b = first ? g : tail ? FMA(buf[i], m, g * damp) : FMA(damp, g, buf[i] * m);       \
                buf[i] = b;                                                                               \
                g = nesterov ? FMA(b, m, g) : b;                                                          \
            }                                                                                             \
            param[i] = FMA(g, mlr, param[i]);                                                             \
        }                                                                                                 \
    }                                                                                                     \
    CKPT_INLINE void NAME(ckpt_optimizer_path path, T *restrict param, T *restrict grad, T *restrict buf, \
                          int64_t begin, int64_t end, const ckpt_sgd_options *o) {                        \
        const int has_m = o->momentum != 0.0 && buf != 0, first = o->first_step != 0;                     \
        if (path == CKPT_PATH_FUSED) {                                                                    \
            CKPT_SGD_FUSED_RUNS(NAME##_fused, fused_vector(sizeof *param));                               \
            return;                                                                                       \
        }                                                                                                 \
        switch ((o->complex != 0) * 4 + has_m * 2 + first) {                                              \
        case 0:                                                                                           \
        case 1: NAME##_unfused(param, grad, buf, begin, end, o, 0, 0, 0); break;                          \
        case 2: NAME##_unfused(param, grad, buf, begin, end, o, 1, 0, 0); break;                          \
        case 3: NAME##_unfused(param, grad, buf, begin, end, o, 1, 1, 0); break;                          \
        case 4:                                                                                           \
        case 5: NAME##_unfused(param, grad, buf, begin, end, o, 0, 0, 1); break;                          \
        case 6: NAME##_unfused(param, grad, buf, begin, end, o, 1, 0, 1); break;                          \
        default: NAME##_unfused(param, grad, buf, begin, end, o, 1, 1, 1); break;                         \
        }                                                                                                 \
    }

CKPT_DEFINE_REAL_SGD(sgd_body_f32, float, fma_f32)
CKPT_DEFINE_REAL_SGD(sgd_body_f64, double, fma_f64)

// MARK: float16 / bfloat16

// The non-fused paths: every op widens to float, computes and rounds its result to the type
// (LOWP), and `add` rounds differently in its scalar tails, so a range is walked in runs that lie
// wholly inside or wholly outside the tails of the chunks torch's threads get.
#define CKPT_DEFINE_REDUCED_SGD(NAME, TO_FLOAT, FROM_FLOAT)                                               \
    CKPT_INLINE float NAME##_lowp(float x) { return TO_FLOAT(FROM_FLOAT(x)); }                            \
    CKPT_INLINE void NAME##_unfused(ckpt_optimizer_path path, uint16_t *restrict param,                   \
                                    uint16_t *restrict grad, uint16_t *restrict buf, int64_t begin,       \
                                    int64_t end, const ckpt_sgd_options *o, int has_m, int first,         \
                                    int tail) {                                                           \
        const float wd = NAME##_lowp((float)o->weight_decay), m = NAME##_lowp((float)o->momentum);        \
        const float damp = NAME##_lowp((float)(1.0 - o->dampening)), mlr = NAME##_lowp((float)(-o->lr));  \
        /* buf.mul_(momentum) takes the scalar as float; _foreach_mul_ casts it to the type */           \
        const float scale = path == CKPT_PATH_FOREACH ? m : (float)o->momentum;                           \
        const int has_wd = o->weight_decay != 0.0, maximize = o->maximize != 0;                           \
        const int nesterov = o->nesterov != 0, write_grad = o->write_grad != 0;                           \
        for (int64_t i = begin; i < end; i++) {                                                           \
            float g = TO_FLOAT(grad[i]);                                                                  \
            if (maximize) g = -g;                                                                         \
            const float p = TO_FLOAT(param[i]);                                                           \
            if (has_wd) g = CKPT_REDUCED_ADD(TO_FLOAT, FROM_FLOAT, g, p, wd, tail);                       \
            if (has_m) {                                                                                  \
                float b = g;                                                                              \
                if (!first) {                                                                             \
                    const float decayed = NAME##_lowp(TO_FLOAT(buf[i]) * scale);                          \
                    b = CKPT_REDUCED_ADD(TO_FLOAT, FROM_FLOAT, decayed, g, damp, tail);                   \
                }                                                                                         \
                buf[i] = FROM_FLOAT(b);                                                                   \
                if (nesterov) {                                                                           \
                    g = CKPT_REDUCED_ADD(TO_FLOAT, FROM_FLOAT, g, b, m, tail);                            \
                    if (write_grad) grad[i] = FROM_FLOAT(g);                                              \
                } else {                                                                                  \
                    g = b;                                                                                \
                }                                                                                         \
            }                                                                                             \
            param[i] = FROM_FLOAT(CKPT_REDUCED_ADD(TO_FLOAT, FROM_FLOAT, p, g, mlr, tail));               \
        }                                                                                                 \
    }                                                                                                     \
    /* FusedSGDKernel.cpp's 2-byte kernel: float throughout, scalars as float, g after the momentum   \
       step is the float buffer before it is rounded to store it. */                                     \
    CKPT_INLINE void NAME##_fused(uint16_t *restrict param, const uint16_t *restrict grad,                \
                                  uint16_t *restrict buf, int64_t begin, int64_t end,                     \
                                  const ckpt_sgd_options *o, int has_m, int first, int tail) {            \
        const float wd = (float)o->weight_decay, m = (float)o->momentum;                                  \
        const float damp = (float)(1.0 - o->dampening), mlr = -(float)o->lr;                              \
        const int has_wd = o->weight_decay != 0.0, maximize = o->maximize != 0;                           \
        const int nesterov = o->nesterov != 0;                                                            \
        for (int64_t i = begin; i < end; i++) {                                                           \
            float g = TO_FLOAT(grad[i]);                                                                  \
            if (maximize) g = -g;                                                                         \
            const float p = TO_FLOAT(param[i]);                                                           \
            if (has_wd) g = fma_f32(p, wd, g);                                                            \
            if (has_m) {                                                                                  \
                float b = g;                                                                              \
                if (!first) {                                                                             \
                    const float old = TO_FLOAT(buf[i]);                                                   \
                    b = tail ? fma_f32(old, m, g * damp) : fma_f32(damp, g, old * m);                     \
                }                                                                                         \
                buf[i] = FROM_FLOAT(b);                                                                   \
                g = nesterov ? fma_f32(b, m, g) : b;                                                      \
            }                                                                                             \
            param[i] = FROM_FLOAT(fma_f32(g, mlr, p));                                                    \
        }                                                                                                 \
    }                                                                                                     \
    CKPT_INLINE void NAME##_unfused_runs(ckpt_optimizer_path path, uint16_t *restrict param,              \
                                         uint16_t *restrict grad, uint16_t *restrict buf, int64_t begin,  \
                                         int64_t end, const ckpt_sgd_options *o, int has_m, int first) {  \
        const int64_t chunk = o->add_chunk > 0 ? o->add_chunk : 1;                                        \
        for (int64_t start = begin; start < end;) {                                                       \
            const int64_t chunk_start = start / chunk * chunk;                                            \
            const int64_t chunk_end = chunk_start + chunk < o->numel ? chunk_start + chunk : o->numel;    \
            const int64_t tail_start = chunk_end - (chunk_end - chunk_start) % ADD_LOOP_STEP;             \
            const int tail = start >= tail_start;                                                         \
            int64_t stop = tail ? chunk_end : tail_start;                                                 \
            if (stop > end) stop = end;                                                                   \
            if (tail) NAME##_unfused(path, param, grad, buf, start, stop, o, has_m, first, 1);            \
            else NAME##_unfused(path, param, grad, buf, start, stop, o, has_m, first, 0);                 \
            start = stop;                                                                                 \
        }                                                                                                 \
    }                                                                                                     \
    CKPT_INLINE void NAME(ckpt_optimizer_path path, uint16_t *restrict param, uint16_t *restrict grad,    \
                          uint16_t *restrict buf, int64_t begin, int64_t end, const ckpt_sgd_options *o) {\
        const int has_m = o->momentum != 0.0 && buf != 0, first = o->first_step != 0;                     \
        if (path == CKPT_PATH_FUSED) {                                                                    \
            CKPT_SGD_FUSED_RUNS(NAME##_fused, fused_vector(sizeof *param));                               \
            return;                                                                                       \
        }                                                                                                 \
        switch (has_m * 2 + first) {                                                                      \
        case 0:                                                                                           \
        case 1: NAME##_unfused_runs(path, param, grad, buf, begin, end, o, 0, 0); break;                  \
        case 2: NAME##_unfused_runs(path, param, grad, buf, begin, end, o, 1, 0); break;                  \
        default: NAME##_unfused_runs(path, param, grad, buf, begin, end, o, 1, 1); break;                 \
        }                                                                                                 \
    }

CKPT_DEFINE_REDUCED_SGD(sgd_body_f16, half_to_float, float_to_half)
CKPT_DEFINE_REDUCED_SGD(sgd_body_bf16, bf16_to_float, float_to_bf16)

// MARK: Entry points, one variant per instruction set

#define CKPT_SGD_ENTRY(SUFFIX, T)                                                                         \
    CKPT_ISA_VARIANTS(ckpt_sgd_##SUFFIX, sgd_body_##SUFFIX, o->isa,                                      \
                      (ckpt_optimizer_path path, T *param, T *grad, T *buf, int64_t begin, int64_t end,   \
                       const ckpt_sgd_options *o),                                                        \
                      (path, param, grad, buf, begin, end, o))

CKPT_SGD_ENTRY(f32, float)
CKPT_SGD_ENTRY(f64, double)
CKPT_SGD_ENTRY(f16, uint16_t)
CKPT_SGD_ENTRY(bf16, uint16_t)

void ckpt_sgd_task_range(const void *task, int64_t begin, int64_t end) {
    const ckpt_sgd_task *t = task;
    switch (t->scalar) {
    case CKPT_SCALAR_F32: ckpt_sgd_f32(t->path, t->param, t->grad, t->momentum_buffer, begin, end, &t->options); break;
    case CKPT_SCALAR_F64: ckpt_sgd_f64(t->path, t->param, t->grad, t->momentum_buffer, begin, end, &t->options); break;
    case CKPT_SCALAR_F16: ckpt_sgd_f16(t->path, t->param, t->grad, t->momentum_buffer, begin, end, &t->options); break;
    case CKPT_SCALAR_BF16: ckpt_sgd_bf16(t->path, t->param, t->grad, t->momentum_buffer, begin, end, &t->options); break;
    }
}
