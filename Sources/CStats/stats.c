// Block moments for TensorStatistics: a vectorized first pass (min, max, sum, counts) and a second
// pass over the same block, still in L1, for deviations from the block's mean. Each function has
// AVX-512 (float types) and AVX2+FMA+F16C variants chosen at run time and a portable one, so the
// library needs no compiler flags.

#include "ckpt_stats.h"
#include "elements.h"

#include <math.h>
#include <string.h>

// MARK: portable

/// Elements [start, count) of a block, folded into `out` whose first-pass fields already hold
/// the vectorized part; `sum` must not be final yet.
static void first_pass_tail(const void *elements, size_t start, size_t count, element_reader read, ckpt_block_moments *out) {
    for (size_t i = start; i < count; i++) {
        double x = read(elements, i);
        if (x < out->minimum) out->minimum = x;
        if (x > out->maximum) out->maximum = x;
        out->sum += x;
        out->zeros += x == 0;
        out->nans += isnan(x) != 0;
        out->infinities += isinf(x) != 0;
    }
}

static void second_pass_tail(const void *elements, size_t start, size_t count, element_reader read, ckpt_block_moments *out) {
    for (size_t i = start; i < count; i++) {
        double d = read(elements, i) - out->center;
        out->offset += d;
        out->deviations += d * d;
    }
}

static void init_moments(ckpt_block_moments *out) {
    out->minimum = INFINITY;
    out->maximum = -INFINITY;
    out->sum = out->center = out->offset = out->deviations = 0;
    out->zeros = out->nans = out->infinities = 0;
}

static void portable(const void *elements, size_t count, element_reader read, ckpt_block_moments *out) {
    init_moments(out);
    first_pass_tail(elements, 0, count, read, out);
    out->center = count ? out->sum / (double)count : 0;
    second_pass_tail(elements, 0, count, read, out);
}

/// Portable one pass around K = the block's first element (as the vector kernels below), with
/// eight independent accumulators per sum, which compilers map onto NEON or SSE2 registers without
/// reassociating any floating-point sum. Blocks led by an outlier, or holding NaN or Inf, are
/// redone by the two-pass `portable`.
#define CKPT_PORTABLE_KERNEL(name, read)                                                                \
    static void name(const void *elements, size_t count, ckpt_block_moments *out) {                    \
        size_t vectorized = count & ~(size_t)7;                                                        \
        double shift = vectorized ? read(elements, 0) : NAN;                                           \
        if (!isfinite(shift)) {                                                                        \
            portable(elements, count, read, out);                                                      \
            return;                                                                                    \
        }                                                                                              \
        init_moments(out);                                                                             \
        double low[8], high[8], offsets[8], squares[8];                                                \
        int64_t zeros[8];                                                                              \
        for (int j = 0; j < 8; j++) {                                                                  \
            low[j] = INFINITY;                                                                         \
            high[j] = -INFINITY;                                                                       \
            offsets[j] = squares[j] = 0;                                                               \
            zeros[j] = 0;                                                                              \
        }                                                                                              \
        for (size_t i = 0; i < vectorized; i += 8) {                                                   \
            for (int j = 0; j < 8; j++) {                                                              \
                double x = read(elements, i + j), d = x - shift;                                       \
                low[j] = x < low[j] ? x : low[j];                                                      \
                high[j] = x > high[j] ? x : high[j];                                                   \
                offsets[j] += d;                                                                       \
                squares[j] += d * d;                                                                   \
                zeros[j] += x == 0;                                                                    \
            }                                                                                          \
        }                                                                                              \
        double offset = 0, square = 0;                                                                 \
        for (int j = 0; j < 8; j++) {                                                                  \
            if (low[j] < out->minimum) out->minimum = low[j];                                          \
            if (high[j] > out->maximum) out->maximum = high[j];                                        \
            offset += offsets[j];                                                                      \
            square += squares[j];                                                                      \
            out->zeros += zeros[j];                                                                    \
        }                                                                                              \
        for (size_t i = vectorized; i < count; i++) {                                                  \
            double x = read(elements, i), d = x - shift;                                               \
            if (x < out->minimum) out->minimum = x;                                                    \
            if (x > out->maximum) out->maximum = x;                                                    \
            out->zeros += x == 0;                                                                      \
            offset += d;                                                                               \
            square += d * d;                                                                           \
        }                                                                                              \
        double m2 = square - offset * (offset / (double)count);                                        \
        if (!isfinite(square) || !isfinite(offset) || square > 17 * m2) {                              \
            portable(elements, count, read, out);                                                      \
            return;                                                                                    \
        }                                                                                              \
        out->center = shift;                                                                           \
        out->offset = offset;                                                                          \
        out->deviations = square;                                                                      \
        out->sum = (double)count * shift + offset;                                                     \
    }

CKPT_PORTABLE_KERNEL(f32_portable, read_f32)
CKPT_PORTABLE_KERNEL(f64_portable, read_f64)
CKPT_PORTABLE_KERNEL(bf16_portable, read_bf16)
CKPT_PORTABLE_KERNEL(f16_portable, read_f16)

// MARK: AVX2

#ifdef CKPT_STATS_X86

/// First-pass state for eight float lanes (min/max in float, sums in two double halves).
typedef struct {
    __m256 minimum, maximum;
    __m256d sum_low, sum_high;
    __m256i zeros, nonfinite;
} lanes8;

CKPT_AVX2 static inline void lanes_init(lanes8 *s) {
    s->minimum = _mm256_set1_ps(INFINITY);
    s->maximum = _mm256_set1_ps(-INFINITY);
    s->sum_low = s->sum_high = _mm256_setzero_pd();
    s->zeros = s->nonfinite = _mm256_setzero_si256();
}

CKPT_AVX2 static inline void lanes_add(lanes8 *s, __m256 v) {
    s->minimum = _mm256_min_ps(s->minimum, v);
    s->maximum = _mm256_max_ps(s->maximum, v);
    s->sum_low = _mm256_add_pd(s->sum_low, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    s->sum_high = _mm256_add_pd(s->sum_high, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    // A mask lane is -1 where true: subtracting it counts.
    s->zeros = _mm256_sub_epi32(s->zeros, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_EQ_OQ)));
    __m256i exponent = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7F800000));
    s->nonfinite = _mm256_sub_epi32(s->nonfinite, _mm256_cmpeq_epi32(exponent, _mm256_set1_epi32(0x7F800000)));
}

CKPT_AVX2 static inline int64_t sum_epi32(__m256i v) {
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, v);
    int64_t total = 0;
    for (int i = 0; i < 8; i++) total += lanes[i];
    return total;
}

CKPT_AVX2 static inline double sum_pd(__m256d v) {
    double lanes[4];
    _mm256_storeu_pd(lanes, v);
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

/// Folds the lanes into `out` and returns how many non-finite elements they saw. Those are rare,
/// so lanes only count them; the caller rescans the block to tell NaNs from infinities.
CKPT_AVX2 static int64_t lanes_finish(lanes8 *s, ckpt_block_moments *out) {
    float minimum[8], maximum[8];
    _mm256_storeu_ps(minimum, s->minimum);
    _mm256_storeu_ps(maximum, s->maximum);
    for (int i = 0; i < 8; i++) {
        if (minimum[i] < out->minimum) out->minimum = minimum[i];
        if (maximum[i] > out->maximum) out->maximum = maximum[i];
    }
    out->sum += sum_pd(_mm256_add_pd(s->sum_low, s->sum_high));
    out->zeros += sum_epi32(s->zeros);
    return sum_epi32(s->nonfinite);
}

static void count_nonfinite(const void *elements, size_t count, element_reader read, ckpt_block_moments *out) {
    for (size_t i = 0; i < count; i++) {
        double x = read(elements, i);
        out->nans += isnan(x) != 0;
        out->infinities += isinf(x) != 0;
    }
}

/// Σ(x − c) and Σ(x − c)² over eight float lanes converted to double.
CKPT_AVX2 static inline void deviations_add(__m256 v, __m256d center, __m256d *offset, __m256d *squares) {
    __m256d low = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), center);
    __m256d high = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), center);
    *offset = _mm256_add_pd(*offset, _mm256_add_pd(low, high));
    *squares = _mm256_fmadd_pd(low, low, *squares);
    *squares = _mm256_fmadd_pd(high, high, *squares);
}

CKPT_AVX2 static inline __m256 load_f32(const void *e, size_t i) { return _mm256_loadu_ps((const float *)e + i); }

CKPT_AVX2 static inline __m256 load_bf16(const void *e, size_t i) {
    __m128i bits = _mm_loadu_si128((const __m128i *)((const uint16_t *)e + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
}

CKPT_AVX2 static inline __m256 load_f16(const void *e, size_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)e + i)));
}

#define CKPT_FLOAT_KERNEL(name, load, read)                                                              \
    CKPT_AVX2 static void name(const void *elements, size_t count, ckpt_block_moments *out) {          \
        init_moments(out);                                                                             \
        size_t vectorized = count & ~(size_t)15;                                                       \
        lanes8 a, b;                                                                                   \
        lanes_init(&a);                                                                                \
        lanes_init(&b);                                                                                \
        for (size_t i = 0; i < vectorized; i += 16) {                                                  \
            lanes_add(&a, load(elements, i));                                                          \
            lanes_add(&b, load(elements, i + 8));                                                      \
        }                                                                                              \
        if (lanes_finish(&a, out) + lanes_finish(&b, out) > 0) {                                       \
            count_nonfinite(elements, vectorized, read, out);                                          \
        }                                                                                              \
        first_pass_tail(elements, vectorized, count, read, out);                                       \
        out->center = count ? out->sum / (double)count : 0;                                            \
        __m256d center = _mm256_set1_pd(out->center);                                                 \
        __m256d o1 = _mm256_setzero_pd(), o2 = _mm256_setzero_pd();                                    \
        __m256d q1 = _mm256_setzero_pd(), q2 = _mm256_setzero_pd();                                    \
        for (size_t i = 0; i < vectorized; i += 16) {                                                  \
            deviations_add(load(elements, i), center, &o1, &q1);                                       \
            deviations_add(load(elements, i + 8), center, &o2, &q2);                                   \
        }                                                                                              \
        out->offset = sum_pd(_mm256_add_pd(o1, o2));                                                   \
        out->deviations = sum_pd(_mm256_add_pd(q1, q2));                                               \
        second_pass_tail(elements, vectorized, count, read, out);                                      \
    }

/// The single pass of the AVX-512 kernels below (sums around the block's first element), eight lanes wide.
#define CKPT_FLOAT_KERNEL_SHIFTED(name, two_pass, load, read)                                                 \
    CKPT_AVX2 static void name(const void *elements, size_t count, ckpt_block_moments *out) {                 \
        size_t vectorized = count & ~(size_t)15;                                                              \
        double shift = vectorized ? read(elements, 0) : NAN;                                                  \
        if (!isfinite(shift)) {                                                                               \
            two_pass(elements, count, out);                                                                   \
            return;                                                                                           \
        }                                                                                                     \
        init_moments(out);                                                                                    \
        const __m256d k = _mm256_set1_pd(shift);                                                              \
        __m256 minimum = _mm256_set1_ps(INFINITY), maximum = _mm256_set1_ps(-INFINITY);                      \
        __m256d o1 = _mm256_setzero_pd(), o2 = _mm256_setzero_pd(), o3 = _mm256_setzero_pd(),                 \
                o4 = _mm256_setzero_pd();                                                                     \
        __m256d q1 = _mm256_setzero_pd(), q2 = _mm256_setzero_pd(), q3 = _mm256_setzero_pd(),                 \
                q4 = _mm256_setzero_pd();                                                                     \
        __m256i zeros = _mm256_setzero_si256();                                                               \
        for (size_t i = 0; i < vectorized; i += 16) {                                                         \
            __m256 a = load(elements, i), b = load(elements, i + 8);                                          \
            minimum = _mm256_min_ps(_mm256_min_ps(minimum, a), b);                                            \
            maximum = _mm256_max_ps(_mm256_max_ps(maximum, a), b);                                            \
            __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), k);                        \
            __m256d d2 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), k);                      \
            __m256d d3 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(b)), k);                        \
            __m256d d4 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(b, 1)), k);                      \
            o1 = _mm256_add_pd(o1, d1);                                                                       \
            o2 = _mm256_add_pd(o2, d2);                                                                       \
            o3 = _mm256_add_pd(o3, d3);                                                                       \
            o4 = _mm256_add_pd(o4, d4);                                                                       \
            q1 = _mm256_fmadd_pd(d1, d1, q1);                                                                 \
            q2 = _mm256_fmadd_pd(d2, d2, q2);                                                                 \
            q3 = _mm256_fmadd_pd(d3, d3, q3);                                                                 \
            q4 = _mm256_fmadd_pd(d4, d4, q4);                                                                 \
            zeros = _mm256_sub_epi32(zeros, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_EQ_OQ))); \
            zeros = _mm256_sub_epi32(zeros, _mm256_castps_si256(_mm256_cmp_ps(b, _mm256_setzero_ps(), _CMP_EQ_OQ))); \
        }                                                                                                     \
        double offset = sum_pd(_mm256_add_pd(_mm256_add_pd(o1, o2), _mm256_add_pd(o3, o4)));                  \
        double squares = sum_pd(_mm256_add_pd(_mm256_add_pd(q1, q2), _mm256_add_pd(q3, q4)));                 \
        float lanes_min[8], lanes_max[8];                                                                     \
        _mm256_storeu_ps(lanes_min, minimum);                                                                 \
        _mm256_storeu_ps(lanes_max, maximum);                                                                 \
        for (int lane = 0; lane < 8; lane++) {                                                                \
            if (lanes_min[lane] < out->minimum) out->minimum = lanes_min[lane];                               \
            if (lanes_max[lane] > out->maximum) out->maximum = lanes_max[lane];                               \
        }                                                                                                     \
        out->zeros = sum_epi32(zeros);                                                                        \
        for (size_t i = vectorized; i < count; i++) {                                                         \
            double x = read(elements, i), d = x - shift;                                                      \
            if (x < out->minimum) out->minimum = x;                                                           \
            if (x > out->maximum) out->maximum = x;                                                           \
            out->zeros += x == 0;                                                                             \
            offset += d;                                                                                      \
            squares += d * d;                                                                                 \
        }                                                                                                     \
        double m2 = squares - offset * (offset / (double)count);                                             \
        /* A NaN or infinity anywhere leaves the sums non-finite; float data cannot overflow them. */          \
        if (!isfinite(squares) || !isfinite(offset) || squares > 17 * m2) {                                   \
            two_pass(elements, count, out);                                                                   \
            return;                                                                                           \
        }                                                                                                     \
        out->center = shift;                                                                                  \
        out->offset = offset;                                                                                 \
        out->deviations = squares;                                                                            \
        out->sum = (double)count * shift + offset;                                                            \
    }

CKPT_FLOAT_KERNEL(f32_avx2_two_pass, load_f32, read_f32)
CKPT_FLOAT_KERNEL(bf16_avx2_two_pass, load_bf16, read_bf16)
CKPT_FLOAT_KERNEL(f16_avx2_two_pass, load_f16, read_f16)
CKPT_FLOAT_KERNEL_SHIFTED(f32_avx2, f32_avx2_two_pass, load_f32, read_f32)
CKPT_FLOAT_KERNEL_SHIFTED(bf16_avx2, bf16_avx2_two_pass, load_bf16, read_bf16)
CKPT_FLOAT_KERNEL_SHIFTED(f16_avx2, f16_avx2_two_pass, load_f16, read_f16)

CKPT_AVX2 static void f64_avx2(const void *elements, size_t count, ckpt_block_moments *out) {
    init_moments(out);
    const double *x = (const double *)elements;
    size_t vectorized = count & ~(size_t)7;
    __m256d minimum = _mm256_set1_pd(INFINITY), maximum = _mm256_set1_pd(-INFINITY);
    __m256d s1 = _mm256_setzero_pd(), s2 = _mm256_setzero_pd();
    __m256i zeros = _mm256_setzero_si256(), nonfinite = _mm256_setzero_si256();
    const __m256i exponent_mask = _mm256_set1_epi64x(0x7FF0000000000000LL);
    for (size_t i = 0; i < vectorized; i += 8) {
        __m256d a = _mm256_loadu_pd(x + i), b = _mm256_loadu_pd(x + i + 4);
        minimum = _mm256_min_pd(_mm256_min_pd(minimum, a), b);
        maximum = _mm256_max_pd(_mm256_max_pd(maximum, a), b);
        s1 = _mm256_add_pd(s1, a);
        s2 = _mm256_add_pd(s2, b);
        zeros = _mm256_sub_epi64(zeros, _mm256_castpd_si256(_mm256_cmp_pd(a, _mm256_setzero_pd(), _CMP_EQ_OQ)));
        zeros = _mm256_sub_epi64(zeros, _mm256_castpd_si256(_mm256_cmp_pd(b, _mm256_setzero_pd(), _CMP_EQ_OQ)));
        nonfinite = _mm256_sub_epi64(nonfinite, _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_castpd_si256(a), exponent_mask), exponent_mask));
        nonfinite = _mm256_sub_epi64(nonfinite, _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_castpd_si256(b), exponent_mask), exponent_mask));
    }
    double lanes_min[4], lanes_max[4];
    int64_t lanes_zeros[4], lanes_nonfinite[4];
    _mm256_storeu_pd(lanes_min, minimum);
    _mm256_storeu_pd(lanes_max, maximum);
    _mm256_storeu_si256((__m256i *)lanes_zeros, zeros);
    _mm256_storeu_si256((__m256i *)lanes_nonfinite, nonfinite);
    int64_t any_nonfinite = 0;
    for (int i = 0; i < 4; i++) {
        if (lanes_min[i] < out->minimum) out->minimum = lanes_min[i];
        if (lanes_max[i] > out->maximum) out->maximum = lanes_max[i];
        out->zeros += lanes_zeros[i];
        any_nonfinite += lanes_nonfinite[i];
    }
    out->sum = sum_pd(_mm256_add_pd(s1, s2));
    if (any_nonfinite) count_nonfinite(elements, vectorized, read_f64, out);
    first_pass_tail(elements, vectorized, count, read_f64, out);
    out->center = count ? out->sum / (double)count : 0;
    __m256d center = _mm256_set1_pd(out->center);
    __m256d o1 = _mm256_setzero_pd(), o2 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd(), q2 = _mm256_setzero_pd();
    for (size_t i = 0; i < vectorized; i += 8) {
        __m256d a = _mm256_sub_pd(_mm256_loadu_pd(x + i), center), b = _mm256_sub_pd(_mm256_loadu_pd(x + i + 4), center);
        o1 = _mm256_add_pd(o1, a);
        o2 = _mm256_add_pd(o2, b);
        q1 = _mm256_fmadd_pd(a, a, q1);
        q2 = _mm256_fmadd_pd(b, b, q2);
    }
    out->offset = sum_pd(_mm256_add_pd(o1, o2));
    out->deviations = sum_pd(_mm256_add_pd(q1, q2));
    second_pass_tail(elements, vectorized, count, read_f64, out);
}

// MARK: AVX-512


CKPT_AVX512 static inline __m512 load16_f32(const void *e, size_t i) { return _mm512_loadu_ps((const float *)e + i); }

CKPT_AVX512 static inline __m512 load16_bf16(const void *e, size_t i) {
    __m256i bits = _mm256_loadu_si256((const __m256i *)((const uint16_t *)e + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

CKPT_AVX512 static inline __m512 load16_f16(const void *e, size_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)e + i)));
}

/// Sixteen float lanes: min/max in float, sums in two double halves, counts from mask popcounts.
#define CKPT_FLOAT_KERNEL_512(name, load, read)                                                                \
    CKPT_AVX512 static void name(const void *elements, size_t count, ckpt_block_moments *out) {               \
        init_moments(out);                                                                                    \
        size_t vectorized = count & ~(size_t)31;                                                              \
        __m512 minimum = _mm512_set1_ps(INFINITY), maximum = _mm512_set1_ps(-INFINITY);                      \
        __m512d s1 = _mm512_setzero_pd(), s2 = _mm512_setzero_pd(), s3 = _mm512_setzero_pd(),                 \
                s4 = _mm512_setzero_pd();                                                                     \
        int64_t zeros = 0, nonfinite = 0;                                                                     \
        for (size_t i = 0; i < vectorized; i += 32) {                                                         \
            __m512 a = load(elements, i), b = load(elements, i + 16);                                         \
            minimum = _mm512_min_ps(_mm512_min_ps(minimum, a), b);                                            \
            maximum = _mm512_max_ps(_mm512_max_ps(maximum, a), b);                                            \
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));                               \
            s2 = _mm512_add_pd(s2, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)))); \
            s3 = _mm512_add_pd(s3, _mm512_cvtps_pd(_mm512_castps512_ps256(b)));                               \
            s4 = _mm512_add_pd(s4, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1)))); \
            __mmask32 zero = (__mmask32)_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_EQ_OQ)                \
                             | ((__mmask32)_mm512_cmp_ps_mask(b, _mm512_setzero_ps(), _CMP_EQ_OQ) << 16);     \
            __mmask32 special = (__mmask32)_mm512_fpclass_ps_mask(a, 0x99)                                    \
                                | ((__mmask32)_mm512_fpclass_ps_mask(b, 0x99) << 16);                         \
            zeros += _mm_popcnt_u32(zero);                                                                    \
            nonfinite += _mm_popcnt_u32(special);                                                             \
        }                                                                                                     \
        out->minimum = _mm512_reduce_min_ps(minimum);                                                         \
        out->maximum = _mm512_reduce_max_ps(maximum);                                                         \
        out->sum = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s1, s2), _mm512_add_pd(s3, s4)));         \
        out->zeros = zeros;                                                                                   \
        if (nonfinite > 0) count_nonfinite(elements, vectorized, read, out);                                  \
        first_pass_tail(elements, vectorized, count, read, out);                                              \
        out->center = count ? out->sum / (double)count : 0;                                                   \
        __m512d center = _mm512_set1_pd(out->center);                                                        \
        __m512d o1 = _mm512_setzero_pd(), o2 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd(),                 \
                q2 = _mm512_setzero_pd();                                                                     \
        for (size_t i = 0; i < vectorized; i += 16) {                                                         \
            __m512 v = load(elements, i);                                                                     \
            __m512d low = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), center);                  \
            __m512d high = _mm512_sub_pd(                                                                     \
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), center);   \
            o1 = _mm512_add_pd(o1, low);                                                                      \
            o2 = _mm512_add_pd(o2, high);                                                                     \
            q1 = _mm512_fmadd_pd(low, low, q1);                                                               \
            q2 = _mm512_fmadd_pd(high, high, q2);                                                             \
        }                                                                                                     \
        out->offset = _mm512_reduce_add_pd(_mm512_add_pd(o1, o2));                                            \
        out->deviations = _mm512_reduce_add_pd(_mm512_add_pd(q1, q2));                                        \
        second_pass_tail(elements, vectorized, count, read, out);                                             \
    }

/// One pass for the usual block: sums of d = x − K and d² around K = the block's first element,
/// a sample of the data and so usually within a few standard deviations of the mean. Then
/// Σd² − (Σd)²/n loses at most a factor Σd²/m2 ≤ 17 of precision; a block where K is an outlier,
/// or with NaN or Inf, is redone by the two-pass kernel.
#define CKPT_FLOAT_KERNEL_512_SHIFTED(name, two_pass, load, read)                                              \
    CKPT_AVX512 static void name(const void *elements, size_t count, ckpt_block_moments *out) {               \
        size_t vectorized = count & ~(size_t)31;                                                              \
        double shift = vectorized ? read(elements, 0) : NAN;                                                  \
        if (!isfinite(shift)) {                                                                               \
            two_pass(elements, count, out);                                                                   \
            return;                                                                                           \
        }                                                                                                     \
        init_moments(out);                                                                                    \
        const __m512d k = _mm512_set1_pd(shift);                                                              \
        __m512 minimum = _mm512_set1_ps(INFINITY), maximum = _mm512_set1_ps(-INFINITY);                      \
        __m512d o1 = _mm512_setzero_pd(), o2 = _mm512_setzero_pd(), o3 = _mm512_setzero_pd(),                 \
                o4 = _mm512_setzero_pd();                                                                     \
        __m512d q1 = _mm512_setzero_pd(), q2 = _mm512_setzero_pd(), q3 = _mm512_setzero_pd(),                 \
                q4 = _mm512_setzero_pd();                                                                     \
        int64_t zeros = 0;                                                                                    \
        for (size_t i = 0; i < vectorized; i += 32) {                                                         \
            __m512 a = load(elements, i), b = load(elements, i + 16);                                         \
            minimum = _mm512_min_ps(_mm512_min_ps(minimum, a), b);                                            \
            maximum = _mm512_max_ps(_mm512_max_ps(maximum, a), b);                                            \
            __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(a)), k);                        \
            __m512d d2 = _mm512_sub_pd(                                                                       \
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))), k);        \
            __m512d d3 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(b)), k);                        \
            __m512d d4 = _mm512_sub_pd(                                                                       \
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1))), k);        \
            o1 = _mm512_add_pd(o1, d1);                                                                       \
            o2 = _mm512_add_pd(o2, d2);                                                                       \
            o3 = _mm512_add_pd(o3, d3);                                                                       \
            o4 = _mm512_add_pd(o4, d4);                                                                       \
            q1 = _mm512_fmadd_pd(d1, d1, q1);                                                                 \
            q2 = _mm512_fmadd_pd(d2, d2, q2);                                                                 \
            q3 = _mm512_fmadd_pd(d3, d3, q3);                                                                 \
            q4 = _mm512_fmadd_pd(d4, d4, q4);                                                                 \
            __mmask32 zero = (__mmask32)_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_EQ_OQ)                \
                             | ((__mmask32)_mm512_cmp_ps_mask(b, _mm512_setzero_ps(), _CMP_EQ_OQ) << 16);     \
            zeros += _mm_popcnt_u32(zero);                                                                    \
        }                                                                                                     \
        double offset = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(o1, o2), _mm512_add_pd(o3, o4)));    \
        double squares = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(q1, q2), _mm512_add_pd(q3, q4)));  \
        out->minimum = _mm512_reduce_min_ps(minimum);                                                         \
        out->maximum = _mm512_reduce_max_ps(maximum);                                                         \
        out->zeros = zeros;                                                                                   \
        for (size_t i = vectorized; i < count; i++) {                                                         \
            double x = read(elements, i), d = x - shift;                                                      \
            if (x < out->minimum) out->minimum = x;                                                           \
            if (x > out->maximum) out->maximum = x;                                                           \
            out->zeros += x == 0;                                                                             \
            offset += d;                                                                                      \
            squares += d * d;                                                                                 \
        }                                                                                                     \
        double m2 = squares - offset * (offset / (double)count);                                             \
        /* A NaN or infinity anywhere leaves the sums non-finite; float data cannot overflow them. */          \
        if (!isfinite(squares) || !isfinite(offset) || squares > 17 * m2) {                                   \
            two_pass(elements, count, out);                                                                   \
            return;                                                                                           \
        }                                                                                                     \
        out->center = shift;                                                                                  \
        out->offset = offset;                                                                                 \
        out->deviations = squares;                                                                            \
        out->sum = (double)count * shift + offset;                                                            \
    }

CKPT_FLOAT_KERNEL_512(f32_avx512_two_pass, load16_f32, read_f32)
CKPT_FLOAT_KERNEL_512(bf16_avx512_two_pass, load16_bf16, read_bf16)
CKPT_FLOAT_KERNEL_512(f16_avx512_two_pass, load16_f16, read_f16)
CKPT_FLOAT_KERNEL_512_SHIFTED(f32_avx512, f32_avx512_two_pass, load16_f32, read_f32)
CKPT_FLOAT_KERNEL_512_SHIFTED(bf16_avx512, bf16_avx512_two_pass, load16_bf16, read_bf16)
CKPT_FLOAT_KERNEL_512_SHIFTED(f16_avx512, f16_avx512_two_pass, load16_f16, read_f16)

// The answers are cached with relaxed atomics: the statistics' worker threads ask at once, and a
// plain static written by one while others read it is a data race (ThreadSanitizer reports it),
// even though each would store the same value.
static int has_avx512(void) {
    static int cached = -1;
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        value = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("popcnt");
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value;
}

static int has_avx2(void) {
    static int cached = -1;
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        value = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value;
}
#endif

// MARK: entry points

static int forced_level = -1;

void ckpt_stats_limit_level(int level) { __atomic_store_n(&forced_level, level, __ATOMIC_RELAXED); }

#ifdef CKPT_STATS_X86
int ckpt_stats_level(void) {
    const ckpt_isa selected = ckpt_isa_selected();
    int detected = has_avx512() && selected >= CKPT_ISA_AVX512 ? 2 : has_avx2() && selected >= CKPT_ISA_AVX2 ? 1 : 0;
    int limit = __atomic_load_n(&forced_level, __ATOMIC_RELAXED);
    return limit >= 0 && limit < detected ? limit : detected;
}

#define CKPT_DISPATCH(wide, fast, slow)                 \
    switch (ckpt_stats_level()) {                                 \
    case 2: wide(elements, count, out); break;         \
    case 1: fast(elements, count, out); break;         \
    default: slow(elements, count, out);               \
    }
#else
int ckpt_stats_level(void) { return 0; }
#define CKPT_DISPATCH(wide, fast, slow) slow(elements, count, out);
#endif

void ckpt_block_moments_f32(const void *elements, size_t count, ckpt_block_moments *out) { CKPT_DISPATCH(f32_avx512, f32_avx2, f32_portable) }
void ckpt_block_moments_f64(const void *elements, size_t count, ckpt_block_moments *out) { CKPT_DISPATCH(f64_avx2, f64_avx2, f64_portable) }
void ckpt_block_moments_bf16(const void *elements, size_t count, ckpt_block_moments *out) { CKPT_DISPATCH(bf16_avx512, bf16_avx2, bf16_portable) }
void ckpt_block_moments_f16(const void *elements, size_t count, ckpt_block_moments *out) { CKPT_DISPATCH(f16_avx512, f16_avx2, f16_portable) }
