#ifndef CKPT_STATS_H
#define CKPT_STATS_H

#include <stddef.h>
#include <stdint.h>

/// Summary of one block of elements (at most a few thousand, so it sits in L1 for the second pass).
///
/// `center` is a reference point near the data (the first-pass mean, or the block's first element
/// when that is close enough); `offset` and `deviations` are Σ(x − center) and Σ(x − center)²,
/// from which the variance follows as deviations − offset²/count. `minimum` and `maximum`
/// are meaningless when `nans` > 0 (the caller reports NaN then).
typedef struct {
    double minimum;
    double maximum;
    double sum;
    double center;
    double offset;
    double deviations;
    int64_t zeros;
    int64_t nans;
    int64_t infinities;
} ckpt_block_moments;

/// Moments of `count` packed little-endian float32 elements.
void ckpt_block_moments_f32(const void *elements, size_t count, ckpt_block_moments *out);
/// Moments of `count` packed float64 elements.
void ckpt_block_moments_f64(const void *elements, size_t count, ckpt_block_moments *out);
/// Moments of `count` packed bfloat16 elements (decoded exactly).
void ckpt_block_moments_bf16(const void *elements, size_t count, ckpt_block_moments *out);
/// Moments of `count` packed IEEE float16 elements (decoded exactly).
void ckpt_block_moments_f16(const void *elements, size_t count, ckpt_block_moments *out);

/// Caps the instruction set used (0 portable, 1 AVX2, 2 AVX-512; -1 for the best the CPU has),
/// so tests can run every variant on one machine.
void ckpt_stats_limit_level(int level);

#endif
