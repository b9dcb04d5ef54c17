#ifndef CKPT_CLOSENESS_H
#define CKPT_CLOSENESS_H

#include <stddef.h>
#include <stdint.h>

/// The element formats the closeness kernel reads directly; others are decoded to float64 first.
typedef enum {
    CKPT_FORMAT_F32 = 0,
    CKPT_FORMAT_F64 = 1,
    CKPT_FORMAT_BF16 = 2,
    CKPT_FORMAT_F16 = 3,
} ckpt_float_format;

/// torch.isclose's verdicts over one block of element pairs, computed in float64.
///
/// Pairs with a NaN on either side are only counted in `nans` and left out of every other field:
/// whether such a pair is close depends on the NaNs' bits and `equal_nan`, which the caller decides.
typedef struct {
    /// Largest |a − b| over unequal pairs; infinity where one side is infinite.
    double max_abs;
    /// Largest |a − b| / |b| over unequal pairs; infinity where b is 0 or either side is infinite.
    double max_rel;
    /// Pairs that are not close: |a − b| > atol + rtol·|b|, or unequal with an infinity.
    int64_t mismatched;
    /// Pairs with a NaN on either side.
    int64_t nans;
} ckpt_block_closeness;

/// Compares `count` packed elements of `a` (format `a_format`) with `count` of `b`.
void ckpt_compare_block(
    const void *a, ckpt_float_format a_format, const void *b, ckpt_float_format b_format, size_t count, double rtol, double atol,
    ckpt_block_closeness *out);

#endif
