// torch.isclose over blocks of element pairs for StateDiff: |a − b| <= atol + rtol·|b| in float64,
// with the maxima StateDiff reports. AVX-512, AVX2 and portable variants for each pairing of float
// formats, reading the elements straight from the mapped checkpoint (no decoding pass), chosen at
// run time like the statistics kernels.

#include "ckpt_closeness.h"
#include "elements.h"

#include <math.h>

static inline void include_pair(double x, double y, double rtol, double atol, ckpt_block_closeness *out) {
    if (x == y) return;
    if (isnan(x) || isnan(y)) {
        out->nans++;
        return;
    }
    if (isinf(x) || isinf(y)) {
        out->max_abs = out->max_rel = INFINITY;
        out->mismatched++;
        return;
    }
    double d = fabs(x - y), m = fabs(y), r = d / m;
    if (d > out->max_abs) out->max_abs = d;
    if (r > out->max_rel) out->max_rel = r;
    // atol + rtol·|b| as torch writes it, without a fused multiply-add that could move a borderline verdict.
    if (!(d <= atol + rtol * m)) out->mismatched++;
}

typedef void (*closeness_kernel)(const void *, const void *, size_t, double, double, ckpt_block_closeness *);

// One kernel per pairing of formats (`a` in rows, `b` in columns, in ckpt_float_format's order) for
// a variant: KERNEL(name, load_a, read_a, load_b, read_b) with the variant's vector loaders
// `variant_load_f32` and so on, and a table `variant_kernels` of them.
#define CKPT_CLOSENESS_ROW(KERNEL, variant, a)                                                                         \
    KERNEL(a##_f32_##variant, variant##_load_##a, read_##a, variant##_load_f32, read_f32)                              \
    KERNEL(a##_f64_##variant, variant##_load_##a, read_##a, variant##_load_f64, read_f64)                              \
    KERNEL(a##_bf16_##variant, variant##_load_##a, read_##a, variant##_load_bf16, read_bf16)                           \
    KERNEL(a##_f16_##variant, variant##_load_##a, read_##a, variant##_load_f16, read_f16)

#define CKPT_CLOSENESS_VARIANT(KERNEL, variant)                                                                        \
    CKPT_CLOSENESS_ROW(KERNEL, variant, f32)                                                                           \
    CKPT_CLOSENESS_ROW(KERNEL, variant, f64)                                                                           \
    CKPT_CLOSENESS_ROW(KERNEL, variant, bf16)                                                                          \
    CKPT_CLOSENESS_ROW(KERNEL, variant, f16)                                                                           \
    static const closeness_kernel variant##_kernels[4][4] = {                                                          \
        {f32_f32_##variant, f32_f64_##variant, f32_bf16_##variant, f32_f16_##variant},                                 \
        {f64_f32_##variant, f64_f64_##variant, f64_bf16_##variant, f64_f16_##variant},                                 \
        {bf16_f32_##variant, bf16_f64_##variant, bf16_bf16_##variant, bf16_f16_##variant},                             \
        {f16_f32_##variant, f16_f64_##variant, f16_bf16_##variant, f16_f16_##variant},                                 \
    };

#define CKPT_CLOSENESS_PORTABLE(name, load_a, read_a, load_b, read_b)                                                  \
    static void name(const void *a, const void *b, size_t count, double rtol, double atol, ckpt_block_closeness *out) { \
        for (size_t i = 0; i < count; i++) include_pair(read_a(a, i), read_b(b, i), rtol, atol, out);                  \
    }

CKPT_CLOSENESS_VARIANT(CKPT_CLOSENESS_PORTABLE, portable)

#ifdef CKPT_STATS_X86

// Four elements as float64 lanes.
CKPT_AVX2 static inline __m256d avx2_load_f32(const void *e, size_t i) { return _mm256_cvtps_pd(_mm_loadu_ps((const float *)e + i)); }
CKPT_AVX2 static inline __m256d avx2_load_f64(const void *e, size_t i) { return _mm256_loadu_pd((const double *)e + i); }
CKPT_AVX2 static inline __m256d avx2_load_bf16(const void *e, size_t i) {
    __m128i bits = _mm_loadl_epi64((const __m128i *)((const uint16_t *)e + i));
    return _mm256_cvtps_pd(_mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(bits), 16)));
}
CKPT_AVX2 static inline __m256d avx2_load_f16(const void *e, size_t i) {
    return _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)((const uint16_t *)e + i))));
}

CKPT_AVX2 static inline int64_t sum_epi64(__m256i v) {
    int64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, v);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

CKPT_AVX2 static inline double max_pd(__m256d v) {
    double lanes[4];
    _mm256_storeu_pd(lanes, v);
    double best = lanes[0];
    for (int i = 1; i < 4; i++) best = lanes[i] > best ? lanes[i] : best;
    return best;
}

/// Four pairs at a time. Lanes with a NaN, an infinity or an overflowing difference take the
/// masked path; finite ones (nearly all) the short one, where an equal pair is simply a close
/// pair with difference 0. The relative difference is divided out only for lanes that may raise
/// the maximum (|a − b| > max·|b|), so the loop is not bound by the divider.
#define CKPT_CLOSENESS_AVX2(name, load_a, read_a, load_b, read_b)                                                       \
    CKPT_AVX2 static void name(const void *a, const void *b, size_t count, double rtol, double atol, ckpt_block_closeness *out) { \
        const __m256d sign = _mm256_set1_pd(-0.0), inf = _mm256_set1_pd(INFINITY);                                    \
        const __m256d vr = _mm256_set1_pd(rtol), va = _mm256_set1_pd(atol);                                          \
        const __m256d ones = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));                                             \
        __m256d max_abs = _mm256_setzero_pd(), max_rel = _mm256_setzero_pd();                                         \
        __m256i mismatched = _mm256_setzero_si256(), nans = _mm256_setzero_si256();                                   \
        size_t vectorized = count & ~(size_t)3;                                                                       \
        for (size_t i = 0; i < vectorized; i += 4) {                                                                  \
            __m256d x = load_a(a, i), y = load_b(b, i);                                                               \
            __m256d d = _mm256_andnot_pd(sign, _mm256_sub_pd(x, y));                                                  \
            __m256d m = _mm256_andnot_pd(sign, y);                                                                    \
            /* max(m, d) is d when d is NaN; not below infinity means NaN or infinity somewhere. */                  \
            __m256d special = _mm256_cmp_pd(_mm256_max_pd(m, d), inf, _CMP_NLT_UQ);                                   \
            __m256d tolerance = _mm256_add_pd(va, _mm256_mul_pd(vr, m));                                              \
            if (_mm256_testz_pd(special, special)) {                                                                  \
                __m256d mismatch = _mm256_cmp_pd(d, tolerance, _CMP_NLE_UQ);                                          \
                mismatched = _mm256_sub_epi64(mismatched, _mm256_castpd_si256(mismatch));                             \
                max_abs = _mm256_max_pd(max_abs, d);                                                                  \
                __m256d raise = _mm256_cmp_pd(d, _mm256_mul_pd(max_rel, m), _CMP_GT_OQ);                              \
                if (!_mm256_testz_pd(raise, raise)) {                                                                 \
                    max_rel = _mm256_max_pd(max_rel, _mm256_and_pd(raise, _mm256_div_pd(d, m)));                      \
                }                                                                                                     \
                continue;                                                                                             \
            }                                                                                                         \
            __m256d nan = _mm256_cmp_pd(x, y, _CMP_UNORD_Q);                                                          \
            __m256d skip = _mm256_or_pd(_mm256_cmp_pd(x, y, _CMP_EQ_OQ), nan);                                        \
            __m256d infinite = _mm256_or_pd(                                                                          \
                _mm256_cmp_pd(_mm256_andnot_pd(sign, x), inf, _CMP_EQ_OQ), _mm256_cmp_pd(m, inf, _CMP_EQ_OQ));       \
            __m256d close = _mm256_andnot_pd(infinite, _mm256_cmp_pd(d, tolerance, _CMP_LE_OQ));                      \
            __m256d mismatch = _mm256_andnot_pd(_mm256_or_pd(skip, close), ones);                                     \
            __m256d rel = _mm256_blendv_pd(_mm256_div_pd(d, m), inf, infinite);                                       \
            d = _mm256_blendv_pd(d, inf, infinite);                                                                   \
            max_abs = _mm256_max_pd(max_abs, _mm256_andnot_pd(skip, d));                                              \
            max_rel = _mm256_max_pd(max_rel, _mm256_andnot_pd(skip, rel));                                            \
            mismatched = _mm256_sub_epi64(mismatched, _mm256_castpd_si256(mismatch));                                 \
            nans = _mm256_sub_epi64(nans, _mm256_castpd_si256(nan));                                                  \
        }                                                                                                             \
        out->max_abs = max_pd(max_abs);                                                                               \
        out->max_rel = max_pd(max_rel);                                                                               \
        out->mismatched = sum_epi64(mismatched);                                                                      \
        out->nans = sum_epi64(nans);                                                                                  \
        for (size_t i = vectorized; i < count; i++) include_pair(read_a(a, i), read_b(b, i), rtol, atol, out);       \
    }

CKPT_CLOSENESS_VARIANT(CKPT_CLOSENESS_AVX2, avx2)

// Eight elements as float64 lanes.
CKPT_AVX512 static inline __m512d avx512_load_f32(const void *e, size_t i) { return _mm512_cvtps_pd(_mm256_loadu_ps((const float *)e + i)); }
CKPT_AVX512 static inline __m512d avx512_load_f64(const void *e, size_t i) { return _mm512_loadu_pd((const double *)e + i); }
CKPT_AVX512 static inline __m512d avx512_load_bf16(const void *e, size_t i) {
    __m128i bits = _mm_loadu_si128((const __m128i *)((const uint16_t *)e + i));
    return _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16)));
}
CKPT_AVX512 static inline __m512d avx512_load_f16(const void *e, size_t i) {
    return _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)e + i))));
}

/// Eight pairs at a time, as the AVX2 kernel's short path; a group of eight with a NaN, an
/// infinity or an overflowing difference goes through the scalar rule, pair by pair.
#define CKPT_CLOSENESS_AVX512(name, load_a, read_a, load_b, read_b)                                                     \
    CKPT_AVX512 static void name(const void *a, const void *b, size_t count, double rtol, double atol, ckpt_block_closeness *out) { \
        const __m512d inf = _mm512_set1_pd(INFINITY), vr = _mm512_set1_pd(rtol), va = _mm512_set1_pd(atol);         \
        __m512d max_abs = _mm512_setzero_pd(), max_rel = _mm512_setzero_pd();                                         \
        int64_t mismatched = 0;                                                                                       \
        size_t vectorized = count & ~(size_t)7;                                                                       \
        for (size_t i = 0; i < vectorized; i += 8) {                                                                  \
            __m512d x = load_a(a, i), y = load_b(b, i);                                                               \
            __m512d d = _mm512_abs_pd(_mm512_sub_pd(x, y)), m = _mm512_abs_pd(y);                                     \
            if (_mm512_cmp_pd_mask(_mm512_max_pd(m, d), inf, _CMP_NLT_UQ)) {                                          \
                for (size_t j = i; j < i + 8; j++) include_pair(read_a(a, j), read_b(b, j), rtol, atol, out);         \
                continue;                                                                                             \
            }                                                                                                         \
            __mmask8 mismatch = _mm512_cmp_pd_mask(d, _mm512_add_pd(va, _mm512_mul_pd(vr, m)), _CMP_NLE_UQ);          \
            mismatched += _mm_popcnt_u32(mismatch);                                                                   \
            max_abs = _mm512_max_pd(max_abs, d);                                                                      \
            __mmask8 raise = _mm512_cmp_pd_mask(d, _mm512_mul_pd(max_rel, m), _CMP_GT_OQ);                            \
            if (raise) max_rel = _mm512_mask_max_pd(max_rel, raise, max_rel, _mm512_div_pd(d, m));                    \
        }                                                                                                             \
        double lanes_abs = _mm512_reduce_max_pd(max_abs), lanes_rel = _mm512_reduce_max_pd(max_rel);                  \
        if (lanes_abs > out->max_abs) out->max_abs = lanes_abs;                                                       \
        if (lanes_rel > out->max_rel) out->max_rel = lanes_rel;                                                       \
        out->mismatched += mismatched;                                                                                \
        for (size_t i = vectorized; i < count; i++) include_pair(read_a(a, i), read_b(b, i), rtol, atol, out);       \
    }

CKPT_CLOSENESS_VARIANT(CKPT_CLOSENESS_AVX512, avx512)
#endif

void ckpt_compare_block(
    const void *a, ckpt_float_format a_format, const void *b, ckpt_float_format b_format, size_t count, double rtol, double atol,
    ckpt_block_closeness *out) {
    out->max_abs = out->max_rel = 0;
    out->mismatched = out->nans = 0;
#ifdef CKPT_STATS_X86
    switch (ckpt_stats_level()) {
    case 2: avx512_kernels[a_format][b_format](a, b, count, rtol, atol, out); return;
    case 1: avx2_kernels[a_format][b_format](a, b, count, rtol, atol, out); return;
    default: break;
    }
#endif
    portable_kernels[a_format][b_format](a, b, count, rtol, atol, out);
}
