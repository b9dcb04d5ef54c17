// Adagrad update kernels that round exactly as PyTorch's CPU paths do.
//
// Each element's arithmetic is written as PyTorch's compiled kernels perform it; contraction is off
// (kernel_support.h) and every FMA below is explicit. Loops are plain C that the compiler vectorizes
// inside the per-instruction-set variants at the end of the file.
#include "kernel_support.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Correctly rounded and free of errno, so loops containing it vectorize.
CKPT_INLINE float sqrt_f32(float x) { return __builtin_elementwise_sqrt(x); }
CKPT_INLINE double sqrt_f64(double x) { return __builtin_elementwise_sqrt(x); }

// torch.sqrt on float32/float64 is MKL's vsSqrt/vdSqrt, whose result depends on the kernel MKL
// picks for the CPU. The kernels below were read from MKL's machine code; each matches MKL's own
// kernel, called directly, bit for bit on 2^20 random inputs of every magnitude.
//
// - MKL_SSE_F32 (float32 on non-Intel x86, e.g. AMD; torch's results here are up to 0.75 ulp off):
//   an rsqrtps estimate, one Goldschmidt step, one Newton correction, every operation rounded.
// - MKL_AVX2_F64 (float64 on x86 except Intel with AVX-512; MKL's SSE and AVX2 kernels agree): x's
//   23 leading mantissa bits and exponent parity form a float in [1, 4) for rsqrtps; the estimate
//   is rescaled by 2^(-exponent/2), refined by a cubic in e = 1 - x·y², and sqrt = x·y + x·(y·e·p(e)).
// - MKL_AVX512 (Intel with AVX-512, both types): an rsqrt14 estimate, Goldschmidt (float64 only)
//   and one FMA Newton correction, with rescaling for tiny inputs.
// - MKL_AVX2_F32 (float32 on Intel without AVX-512, or with MKL_ENABLE_INSTRUCTIONS=AVX2): an
//   rsqrtps estimate, Goldschmidt and an FMA Newton correction; subnormal inputs are special. It is
//   correctly rounded but for some inputs below 2^-114.
// - EXACT: other architectures (torch without MKL).
// The two AVX-512 kernels and MKL_AVX2_F32 were checked against torch 2.15's torch.sqrt on an Intel
// Xeon with AVX-512 (natively, and with MKL restricted to AVX2) on 2^20 random inputs of every
// magnitude each: no difference.
//
// rsqrtps is implementation-defined, but it runs on the CPU torch would run on, so the estimates
// agree; rsqrt14 is specified exactly. Inputs outside MKL's main range (zero, negative, inf, NaN,
// and for the SSE/AVX2 kernels subnormal and huge values) take its special path, correctly rounded.
enum {
    SQRT_EXACT = CKPT_SQRT_EXACT,
    SQRT_MKL_SSE_F32 = CKPT_SQRT_MKL_SSE_F32,
    SQRT_MKL_AVX2_F64 = CKPT_SQRT_MKL_AVX2_F64,
    SQRT_MKL_AVX512 = CKPT_SQRT_MKL_AVX512,
    SQRT_MKL_AVX2_F32 = CKPT_SQRT_MKL_AVX2_F32,
};

// Each square root is split into MKL's estimate (done for a whole block: the compiler cannot
// vectorize the intrinsics) and its refinement (plain arithmetic that vectorizes).
#define CKPT_SQRT_BLOCK 64

CKPT_INLINE int mkl_sse_special_f32(float x) { return (int32_t)(bits_f32(x) + 0x7F800000u) > (int32_t)0xFEFFF000u; }
CKPT_INLINE int mkl_avx2_special_f64(double x) {
    return (int32_t)((uint32_t)(bits_f64(x) >> 32) + 0x7FF00000u) > (int32_t)0xFFBFFFFFu;
}
// Zero, negatives, subnormals, infinity and NaN.
CKPT_INLINE int mkl_avx2_special_f32(float x) { return !(x >= 0x1p-126f && x < __builtin_inff()); }

#if defined(__x86_64__)
// vfpclass 0x5e: ±0, ±inf, negative.
CKPT_INLINE int mkl_avx512_special_f32(float x) { return x == 0.0f || x == __builtin_inff() || (bits_f32(x) >> 31); }
CKPT_INLINE int mkl_avx512_special_f64(double x) { return x == 0.0 || x == __builtin_inf() || (bits_f64(x) >> 63); }
#endif

// The float whose rsqrtps MKL's vdSqrt takes: x's 23 leading mantissa bits with x's exponent
// parity, as a value in [1, 4).
CKPT_INLINE float mkl_reduced_f64(double x) {
    const uint64_t u = bits_f64(x);
    const uint64_t odd_exponent_flip = ~u & 0x0010000000000000ull;
    return f32_bits((uint32_t)(((odd_exponent_flip + 0x07F0000000000000ull) | (u & 0x001FFFFFE0000000ull)) >> 29));
}

// rsqrtps of `in[0..<count]` (count <= CKPT_SQRT_BLOCK; lanes past count are padded with 1).
// Whole vectors are read in place; only a ragged end is copied and padded.
CKPT_INLINE void rsqrtps_block(const float *restrict in, float *restrict out, int count) {
#if defined(__x86_64__)
    int k = 0;
    for (; k + 4 <= count; k += 4) _mm_storeu_ps(out + k, _mm_rsqrt_ps(_mm_loadu_ps(in + k)));
    if (k < count) {
        float padded[4] = {1.0f, 1.0f, 1.0f, 1.0f}, estimate[4];
        for (int lane = 0; k + lane < count; lane++) padded[lane] = in[k + lane];
        _mm_storeu_ps(estimate, _mm_rsqrt_ps(_mm_loadu_ps(padded)));
        for (int lane = 0; k + lane < count; lane++) out[k + lane] = estimate[lane];
    }
#else
    (void)in; (void)out; (void)count;
#endif
}

#if defined(__x86_64__)
// Not inlined: the AVX-512 instructions must stay in an AVX-512 function, called only on such CPUs.
// rsqrt14 is specified bit for bit, so sixteen lanes at a time give what MKL's kernel gets.
__attribute__((target("avx512f"), noinline)) static void rsqrt14_block_f32(const float *in, float *out, int count) {
    for (int k = 0; k < count; k += 16) {
        const __mmask16 lanes = count - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - k)) - 1);
        _mm512_mask_storeu_ps(out + k, lanes, _mm512_rsqrt14_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), lanes, in + k)));
    }
}
__attribute__((target("avx512f"), noinline)) static void rsqrt14_block_f64(const double *in, double *out, int count) {
    for (int k = 0; k < count; k += 8) {
        const __mmask8 lanes = count - k >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (count - k)) - 1);
        _mm512_mask_storeu_pd(out + k, lanes, _mm512_rsqrt14_pd(_mm512_mask_loadu_pd(_mm512_set1_pd(1.0), lanes, in + k)));
    }
}
#endif

CKPT_INLINE float mkl_sse_refine_f32(float x, float y) {
    const float s = x * y, h = y * 0.5f;
    const float r = 0.5f - s * h;
    const float s1 = s * r + s, h1 = h * r + h;
    const float d = x - s1 * s1;
    return d * h1 + s1;
}

CKPT_INLINE float mkl_avx2_refine_f32(float x, float y) {
    const float h = y * 0.5f, s = x * y;
    const float r = fma_f32(-s, h, 0.5f);
    const float s1 = fma_f32(s, r, s), h1 = fma_f32(h, r, h);
    return fma_f32(fma_f32(-s1, s1, x), h1, s1);
}

CKPT_INLINE double mkl_avx2_refine_f64(double x, float estimate) {
    const uint64_t u = bits_f64(x);
    const uint64_t odd_exponent_flip = ~u & 0x0010000000000000ull;
    const double scale = f64_bits(((odd_exponent_flip - (u & 0x7FF0000000000000ull)) + 0xBFD0000000000000ull) >> 1);
    const double y = (double)estimate * scale;
    const double e = fma_f64(-x, y * y, 1.0);
    const double p = fma_f64(fma_f64(fma_f64(0x1.1800032338cbbp-2, e, 0x1.40000b13001d9p-2), e, 0x1.80000000000f6p-2),
                             e, 0x1.ffffffffffe71p-2);
    return fma_f64(x, y, x * (y * (e * p)));
}

#if defined(__x86_64__)
CKPT_INLINE float mkl_avx512_refine_f32(float x, float y) {
    const float h = y * 0.5f, s = x * y;
    if (y > 0x1p39f) {
        const float t = fma_f32(-(s * 0x1p39f), s * 0x1p39f, x * 0x1p78f);
        return fma_f32(h * 0x1p-78f, t, s);
    }
    return fma_f32(fma_f32(-s, s, x), h, s);
}

CKPT_INLINE double mkl_avx512_refine_f64(double x, double y) {
    const double h = y * 0.5, s = x * y;
    const double r = fma_f64(-s, h, 0.5);
    const double s1 = fma_f64(s, r, s), h1 = fma_f64(h, r, h);
    if (y > 0x1p458) {
        const double t = fma_f64(-(s1 * 0x1p458), s1 * 0x1p458, x * 0x1p916);
        return fma_f64(h1 * 0x1p-916, t, s1);
    }
    return fma_f64(fma_f64(-s1, s1, x), h1, s1);
}
#endif

// MKL's refinement for every element, then the exact root where MKL takes its special path (rare:
// zeros, negatives, infinities, NaN, extreme magnitudes), so the common case computes no sqrt.
// `moderate` says the caller saw every input within [2^-100, 2^100] (float32) or [2^-1000, 2^1000]
// (float64), where no kernel takes its special path, so none is looked for.
#define CKPT_REFINE_THEN_PATCH(SPECIAL, REFINE, EXACT)                                                    \
    do {                                                                                                  \
        if (moderate) {                                                                                   \
            for (int k = 0; k < count; k++) roots[k] = REFINE(sums[k], estimate[k]);                      \
            return;                                                                                       \
        }                                                                                                 \
        int any_special = 0;                                                                              \
        for (int k = 0; k < count; k++) {                                                                 \
            roots[k] = REFINE(sums[k], estimate[k]);                                                      \
            any_special |= SPECIAL(sums[k]);                                                              \
        }                                                                                                 \
        if (any_special)                                                                                  \
            for (int k = 0; k < count; k++)                                                               \
                if (SPECIAL(sums[k])) roots[k] = EXACT(sums[k]);                                          \
    } while (0)

// torch.sqrt of sums[0..<count] into roots, for one block.
CKPT_INLINE void torch_sqrt_block_f32(const float *restrict sums, float *restrict roots, int count, int kind,
                                       int moderate) {
    float estimate[CKPT_SQRT_BLOCK];
    switch (kind) {
    case SQRT_MKL_SSE_F32:
        rsqrtps_block(sums, estimate, count);
        CKPT_REFINE_THEN_PATCH(mkl_sse_special_f32, mkl_sse_refine_f32, sqrt_f32);
        return;
    case SQRT_MKL_AVX2_F32:
        rsqrtps_block(sums, estimate, count);
        CKPT_REFINE_THEN_PATCH(mkl_avx2_special_f32, mkl_avx2_refine_f32, sqrt_f32);
        return;
#if defined(__x86_64__)
    case SQRT_MKL_AVX512:
        rsqrt14_block_f32(sums, estimate, count);
        CKPT_REFINE_THEN_PATCH(mkl_avx512_special_f32, mkl_avx512_refine_f32, sqrt_f32);
        return;
#endif
    default:
        for (int k = 0; k < count; k++) roots[k] = sqrt_f32(sums[k]);
    }
}

CKPT_INLINE void torch_sqrt_block_f64(const double *restrict sums, double *restrict roots, int count, int kind,
                                       int moderate) {
    switch (kind) {
    case SQRT_MKL_AVX2_F64: {
        float in[CKPT_SQRT_BLOCK], estimate[CKPT_SQRT_BLOCK];
        for (int k = 0; k < count; k++) in[k] = mkl_reduced_f64(sums[k]);
        rsqrtps_block(in, estimate, count);
        CKPT_REFINE_THEN_PATCH(mkl_avx2_special_f64, mkl_avx2_refine_f64, sqrt_f64);
        return;
    }
#if defined(__x86_64__)
    case SQRT_MKL_AVX512: {
        double estimate[CKPT_SQRT_BLOCK];
        rsqrt14_block_f64(sums, estimate, count);
        CKPT_REFINE_THEN_PATCH(mkl_avx512_special_f64, mkl_avx512_refine_f64, sqrt_f64);
        return;
    }
#endif
    default:
        for (int k = 0; k < count; k++) roots[k] = sqrt_f64(sums[k]);
    }
}

// A kind this CPU cannot compute (rsqrt14 without AVX-512) would fault: exact roots instead.
// Callers check reproducibility first (ckpt_torch_sqrt_reproducible); this only keeps a wrong
// argument from crashing.
static int usable_sqrt_kind(int kind) {
#if defined(__x86_64__)
    if (kind == SQRT_MKL_AVX512) return __builtin_cpu_supports("avx512f") ? kind : SQRT_EXACT;
    return kind == SQRT_MKL_SSE_F32 || kind == SQRT_MKL_AVX2_F64 || kind == SQRT_MKL_AVX2_F32 ? kind : SQRT_EXACT;
#else
    (void)kind;
    return SQRT_EXACT;
#endif
}

void ckpt_torch_sqrt_f32(float *values, int64_t count, ckpt_torch_sqrt_kind sqrt_kind) {
    const int kind = usable_sqrt_kind(sqrt_kind);
    float roots[CKPT_SQRT_BLOCK];
    for (int64_t base = 0; base < count; base += CKPT_SQRT_BLOCK) {
        const int block = count - base < CKPT_SQRT_BLOCK ? (int)(count - base) : CKPT_SQRT_BLOCK;
        torch_sqrt_block_f32(values + base, roots, block, kind, 0);
        memcpy(values + base, roots, (size_t)block * sizeof(float));
    }
}

void ckpt_torch_sqrt_f64(double *values, int64_t count, ckpt_torch_sqrt_kind sqrt_kind) {
    const int kind = usable_sqrt_kind(sqrt_kind);
    double roots[CKPT_SQRT_BLOCK];
    for (int64_t base = 0; base < count; base += CKPT_SQRT_BLOCK) {
        const int block = count - base < CKPT_SQRT_BLOCK ? (int)(count - base) : CKPT_SQRT_BLOCK;
        torch_sqrt_block_f64(values + base, roots, block, kind, 0);
        memcpy(values + base, roots, (size_t)block * sizeof(double));
    }
}

// MARK: float32 / float64

// One body per floating type. `mclr` is `(T)(-clr)`, the scalar torch hands addcdiv (single tensor)
// and mul (foreach); `fclr` is `(T)clr` for the fused kernel. The fused kernel's tail loop uses the
// same casts as its vector loop.
#define CKPT_DEFINE_REAL_BODY(NAME, T, FMA, SQRT, TORCH_SQRT_BLOCK, SQRT_KIND, MODERATE_LOW, MODERATE_HIGH) \
    /* One block of the non-fused paths: grad.add(param, alpha=wd); sum.addcmul_(g, g);                   \
       std = sum.sqrt().add_(eps); then single tensor: param.addcdiv_(g, std, value=-clr), i.e.           \
       p + (-clr * g) / std; foreach: numerator = g * -clr; param.addcdiv_(numerator, std, value=1)       \
       (same bits). Blocks let torch.sqrt's estimate run vectorized between the two halves; called       \
       with the constant CKPT_SQRT_BLOCK, every loop has a fixed trip count the compiler unrolls, and     \
       with constant flags, no loop tests them. The first loop notes whether every sum is moderate, so   \
       that MKL's special cases need no test of their own. */                                            \
    CKPT_INLINE void NAME##_block(T *restrict param, const T *restrict grad, T *restrict sum, int count,  \
                                  T wd, T mclr, T eps, int has_wd, int complex_wd, int maximize,          \
                                  int sqrt_kind) {                                                        \
        const int exact = sqrt_kind == SQRT_EXACT;                                                        \
        T g[CKPT_SQRT_BLOCK], sums[CKPT_SQRT_BLOCK], roots[CKPT_SQRT_BLOCK];                              \
        int immoderate = 0;                                                                               \
        for (int k = 0; k < count; k++) {                                                                 \
            T gk = maximize ? -grad[k] : grad[k];                                                         \
            if (has_wd) gk = complex_wd ? gk + param[k] * wd : FMA(param[k], wd, gk);                     \
            g[k] = gk;                                                                                    \
            const T s = FMA(gk, gk, sum[k]);                                                              \
            sums[k] = s;                                                                                  \
            sum[k] = s;                                                                                   \
            if (!exact) immoderate |= !(s >= MODERATE_LOW && s <= MODERATE_HIGH);                         \
        }                                                                                                 \
        if (exact) {                                                                                      \
            for (int k = 0; k < count; k++) param[k] = param[k] + (mclr * g[k]) / (SQRT(sums[k]) + eps);  \
            return;                                                                                       \
        }                                                                                                 \
        TORCH_SQRT_BLOCK(sums, roots, count, sqrt_kind, !immoderate);                                     \
        for (int k = 0; k < count; k++) param[k] = param[k] + (mclr * g[k]) / (roots[k] + eps);           \
    }                                                                                                     \
    CKPT_INLINE void NAME##_blocks(T *restrict param, const T *restrict grad, T *restrict sum,            \
                                   int64_t begin, int64_t end, T wd, T mclr, T eps, int has_wd,           \
                                   int complex_wd, int maximize, int sqrt_kind) {                         \
        int64_t base = begin;                                                                             \
        for (; end - base >= CKPT_SQRT_BLOCK; base += CKPT_SQRT_BLOCK)                                    \
            NAME##_block(param + base, grad + base, sum + base, CKPT_SQRT_BLOCK, wd, mclr, eps, has_wd,   \
                         complex_wd, maximize, sqrt_kind);                                                \
        if (base < end)                                                                                   \
            NAME##_block(param + base, grad + base, sum + base, (int)(end - base), wd, mclr, eps, has_wd, \
                         complex_wd, maximize, sqrt_kind);                                                \
    }                                                                                                     \
    /* The flags as constants, so that each combination gets its own branch-free loops. */                \
    CKPT_INLINE void NAME##_unfused(T *restrict param, const T *restrict grad, T *restrict sum,           \
                                    int64_t begin, int64_t end, T wd, T mclr, T eps, int has_wd,          \
                                    int complex_wd, int maximize, int sqrt_kind) {                        \
        switch ((has_wd ? (complex_wd ? 2 : 1) : 0) * 2 + (maximize != 0)) {                              \
        case 0: NAME##_blocks(param, grad, sum, begin, end, wd, mclr, eps, 0, 0, 0, sqrt_kind); break;     \
        case 1: NAME##_blocks(param, grad, sum, begin, end, wd, mclr, eps, 0, 0, 1, sqrt_kind); break;     \
        case 2: NAME##_blocks(param, grad, sum, begin, end, wd, mclr, eps, 1, 0, 0, sqrt_kind); break;     \
        case 3: NAME##_blocks(param, grad, sum, begin, end, wd, mclr, eps, 1, 0, 1, sqrt_kind); break;     \
        case 4: NAME##_blocks(param, grad, sum, begin, end, wd, mclr, eps, 1, 1, 0, sqrt_kind); break;     \
        default: NAME##_blocks(param, grad, sum, begin, end, wd, mclr, eps, 1, 1, 1, sqrt_kind); break;    \
        }                                                                                                 \
    }                                                                                                     \
    /* FusedAdagradKernel.cpp: g += p * wd; sum += g * g; std = sqrt(sum) + eps; p = p - clr * g / std */ \
    CKPT_INLINE void NAME##_fused(T *restrict param, const T *restrict grad, T *restrict sum,             \
                                  int64_t begin, int64_t end, T wd, T fclr, T eps, int has_wd,            \
                                  int maximize) {                                                         \
        for (int64_t i = begin; i < end; i++) {                                                           \
            T g = maximize ? -grad[i] : grad[i];                                                          \
            if (has_wd) g = FMA(param[i], wd, g);                                                         \
            const T s = FMA(g, g, sum[i]);                                                                \
            sum[i] = s;                                                                                   \
            const T std = SQRT(s) + eps;                                                                  \
            param[i] = param[i] - (fclr * g) / std;                                                       \
        }                                                                                                 \
    }                                                                                                     \
    CKPT_INLINE void NAME(ckpt_optimizer_path path, T *restrict param, const T *restrict grad,              \
                          T *restrict sum, int64_t begin, int64_t end, const ckpt_adagrad_options *o) {   \
        const T wd = (T)o->weight_decay, eps = (T)o->eps;                                                 \
        const T mclr = (T)(-o->clr), fclr = (T)o->clr;                                                    \
        const int has_wd = o->weight_decay != 0.0, maximize = o->maximize != 0;                           \
        const int complex_wd = o->complex_weight_decay != 0;                                              \
        if (path == CKPT_PATH_FUSED) {                                                                 \
            switch (has_wd * 2 + maximize) {                                                              \
            case 0: NAME##_fused(param, grad, sum, begin, end, wd, fclr, eps, 0, 0); break;               \
            case 1: NAME##_fused(param, grad, sum, begin, end, wd, fclr, eps, 0, 1); break;               \
            case 2: NAME##_fused(param, grad, sum, begin, end, wd, fclr, eps, 1, 0); break;               \
            default: NAME##_fused(param, grad, sum, begin, end, wd, fclr, eps, 1, 1); break;              \
            }                                                                                             \
            return;                                                                                       \
        }                                                                                                 \
        const int sqrt_kind = usable_sqrt_kind(o->SQRT_KIND);                                             \
        if (sqrt_kind == SQRT_EXACT)                                                                      \
            NAME##_unfused(param, grad, sum, begin, end, wd, mclr, eps, has_wd, complex_wd, maximize,     \
                           SQRT_EXACT);                                                                   \
        else                                                                                              \
            NAME##_unfused(param, grad, sum, begin, end, wd, mclr, eps, has_wd, complex_wd, maximize,     \
                           sqrt_kind);                                                                    \
    }

CKPT_DEFINE_REAL_BODY(adagrad_body_f32, float, fma_f32, sqrt_f32, torch_sqrt_block_f32, sqrt_f32_kind, 0x1p-100f, 0x1p100f)
CKPT_DEFINE_REAL_BODY(adagrad_body_f64, double, fma_f64, sqrt_f64, torch_sqrt_block_f64, sqrt_f64_kind, 0x1p-1000, 0x1p1000)

// MARK: float16 / bfloat16

// The non-fused paths run one ATen op at a time: each op widens its inputs to float, computes, and
// rounds its output to the low-precision type. Scalars enter as float, except where an op casts
// them to the tensor's type first (add_(eps), add's alpha, in-place _foreach_mul_). The fused kernel keeps g, sum and param in float for
// the whole element and rounds only what it stores (clr, eps and wd enter as float).
// add(param, alpha=wd) rounds differently in ATen's scalar tails (CKPT_REDUCED_ADD).
#define CKPT_DEFINE_REDUCED_BODY(NAME, TO_FLOAT, FROM_FLOAT)                                              \
    CKPT_INLINE void NAME(ckpt_optimizer_path path, uint16_t *restrict param, const uint16_t *restrict grad,\
                          uint16_t *restrict sum, int64_t begin, int64_t end,                             \
                          const ckpt_adagrad_options *o) {                                                \
        const float wd = (float)o->weight_decay, eps = (float)o->eps;                                     \
        const float mclr = (float)(-o->clr), fclr = (float)o->clr;                                        \
        const int has_wd = o->weight_decay != 0.0, maximize = o->maximize != 0;                           \
        switch (path) {                                                                                   \
        case CKPT_PATH_SINGLE_TENSOR:                                                                  \
        case CKPT_PATH_FOREACH: {                                                                      \
            const int foreach = path == CKPT_PATH_FOREACH;                                             \
            const float lowp_wd = TO_FLOAT(FROM_FLOAT(wd)), lowp_eps = TO_FLOAT(FROM_FLOAT(eps));         \
            /* foreach scales g by -clr in place (_foreach_mul_, which casts the scalar to the            \
               tensor's type) when wd or maximize already made a copy, else out of place (in float) */     \
            const float numerator_scale = (has_wd || maximize) ? TO_FLOAT(FROM_FLOAT(mclr)) : mclr;       \
            for (int64_t i = begin; i < end; i++) {                                                       \
                float g = TO_FLOAT(grad[i]);                                                              \
                if (maximize) g = -g;                                                                     \
                const float p = TO_FLOAT(param[i]);                                                       \
                if (has_wd)                                                                               \
                    g = CKPT_REDUCED_ADD(TO_FLOAT, FROM_FLOAT, g, p, lowp_wd,                             \
                                         in_add_tail(i, o->add_chunk, o->numel));                         \
                const uint16_t s = FROM_FLOAT(fma_f32(g, g, TO_FLOAT(sum[i])));                           \
                sum[i] = s;                                                                               \
                const float root = TO_FLOAT(FROM_FLOAT(sqrt_f32(TO_FLOAT(s))));                           \
                const float std = TO_FLOAT(FROM_FLOAT(root + lowp_eps));                                  \
                float step;                                                                               \
                if (foreach)                                                                              \
                    step = TO_FLOAT(FROM_FLOAT(g * numerator_scale)) / std;                               \
                else                                                                                      \
                    step = (mclr * g) / std;                                                              \
                param[i] = FROM_FLOAT(p + step);                                                          \
            }                                                                                             \
            break;                                                                                        \
        }                                                                                                 \
        case CKPT_PATH_FUSED: {                                                                        \
            for (int64_t i = begin; i < end; i++) {                                                       \
                float g = TO_FLOAT(grad[i]);                                                              \
                if (maximize) g = -g;                                                                     \
                const float p = TO_FLOAT(param[i]);                                                       \
                if (has_wd) g = fma_f32(p, wd, g);                                                        \
                const float s = fma_f32(g, g, TO_FLOAT(sum[i]));                                          \
                sum[i] = FROM_FLOAT(s);                                                                   \
                const float std = sqrt_f32(s) + eps;                                                      \
                param[i] = FROM_FLOAT(p - (fclr * g) / std);                                              \
            }                                                                                             \
            break;                                                                                        \
        }                                                                                                 \
        }                                                                                                 \
    }

CKPT_DEFINE_REDUCED_BODY(adagrad_body_f16, half_to_float, float_to_half)
CKPT_DEFINE_REDUCED_BODY(adagrad_body_bf16, bf16_to_float, float_to_bf16)

// MARK: What torch computes on this CPU

ckpt_cpu_vendor ckpt_cpu_vendor_id(void) {
#if CKPT_X86
    if (__builtin_cpu_is("intel")) return CKPT_VENDOR_INTEL;
    if (__builtin_cpu_is("amd")) return CKPT_VENDOR_AMD;
    return CKPT_VENDOR_OTHER_X86;
#else
    return CKPT_VENDOR_NOT_X86;
#endif
}

// MKL picks its vsSqrt/vdSqrt kernel by vendor and by the instruction set it may use (all the CPU
// has, unless MKL_ENABLE_INSTRUCTIONS caps it).
ckpt_torch_rounding ckpt_torch_rounding_for(ckpt_cpu_vendor vendor, int mkl_avx512) {
    ckpt_torch_rounding rounding = {.sqrt_f32 = CKPT_SQRT_EXACT, .sqrt_f64 = CKPT_SQRT_EXACT, .estimate_vendor = vendor};
    if (vendor == CKPT_VENDOR_NOT_X86) return rounding;
    const int intel = vendor == CKPT_VENDOR_INTEL;
    rounding.sqrt_f32 = !intel ? CKPT_SQRT_MKL_SSE_F32 : mkl_avx512 ? CKPT_SQRT_MKL_AVX512 : CKPT_SQRT_MKL_AVX2_F32;
    rounding.sqrt_f64 = intel && mkl_avx512 ? CKPT_SQRT_MKL_AVX512 : CKPT_SQRT_MKL_AVX2_F64;
    return rounding;
}

ckpt_torch_rounding ckpt_torch_rounding_native(void) {
#if CKPT_X86
    return ckpt_torch_rounding_for(ckpt_cpu_vendor_id(), ckpt_cpu_has_avx512());
#else
    return ckpt_torch_rounding_for(CKPT_VENDOR_NOT_X86, 0);
#endif
}

int ckpt_torch_sqrt_reproducible(ckpt_torch_sqrt_kind kind, ckpt_cpu_vendor estimate_vendor) {
    switch (kind) {
    case CKPT_SQRT_EXACT: return 1;
#if CKPT_X86
    case CKPT_SQRT_MKL_AVX512: return __builtin_cpu_supports("avx512f");  // rsqrt14 is specified exactly
    case CKPT_SQRT_MKL_SSE_F32:
    case CKPT_SQRT_MKL_AVX2_F32:
    case CKPT_SQRT_MKL_AVX2_F64: return estimate_vendor == ckpt_cpu_vendor_id();  // rsqrtps is not
#else
    (void)estimate_vendor;
#endif
    default: return 0;
    }
}

// MARK: Entry points, one variant per instruction set

#define CKPT_ADAGRAD_ENTRY(SUFFIX, T)                                                                     \
    CKPT_ISA_VARIANTS(ckpt_adagrad_##SUFFIX, adagrad_body_##SUFFIX, o->isa,                              \
                      (ckpt_optimizer_path path, T *param, const T *grad, T *sum, int64_t begin,          \
                       int64_t end, const ckpt_adagrad_options *o),                                       \
                      (path, param, grad, sum, begin, end, o))

CKPT_ADAGRAD_ENTRY(f32, float)
CKPT_ADAGRAD_ENTRY(f64, double)
CKPT_ADAGRAD_ENTRY(f16, uint16_t)
CKPT_ADAGRAD_ENTRY(bf16, uint16_t)

void ckpt_adagrad_task_range(const void *task, int64_t begin, int64_t end) {
    const ckpt_adagrad_task *t = task;
    switch (t->scalar) {
    case CKPT_SCALAR_F32: ckpt_adagrad_f32(t->path, t->param, t->grad, t->sum, begin, end, &t->options); break;
    case CKPT_SCALAR_F64: ckpt_adagrad_f64(t->path, t->param, t->grad, t->sum, begin, end, &t->options); break;
    case CKPT_SCALAR_F16: ckpt_adagrad_f16(t->path, t->param, t->grad, t->sum, begin, end, &t->options); break;
    case CKPT_SCALAR_BF16: ckpt_adagrad_bf16(t->path, t->param, t->grad, t->sum, begin, end, &t->options); break;
    }
}
