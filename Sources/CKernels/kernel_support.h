// What every optimizer kernel shares: exact FMAs, float16/bfloat16 conversions as c10 rounds them,
// the place of ATen's scalar tails, and the per-instruction-set variants with their run-time
// dispatch. Private to CKernels (not in include/).
#ifndef CKPT_KERNEL_SUPPORT_H
#define CKPT_KERNEL_SUPPORT_H
#include "ckpt_kernels.h"
#include <string.h>

// PyTorch's kernels are built by GCC with -ffp-contract=fast, so `a + b * c` became one fused
// multiply-add there. Files including this header switch contraction off so that the compiler
// fuses nothing else; every FMA the kernels make is one of these, written out.
#pragma STDC FP_CONTRACT OFF

#define CKPT_INLINE static inline __attribute__((always_inline))

CKPT_INLINE float fma_f32(float a, float b, float c) { return __builtin_elementwise_fma(a, b, c); }
CKPT_INLINE double fma_f64(double a, double b, double c) { return __builtin_elementwise_fma(a, b, c); }

CKPT_INLINE uint32_t bits_f32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
CKPT_INLINE float f32_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
CKPT_INLINE uint64_t bits_f64(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
CKPT_INLINE double f64_bits(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

// IEEE half <-> float, exact and round-to-nearest-even like c10::Half (the classic FP16-library
// formulation, branch-free so it vectorizes).
CKPT_INLINE float half_to_float(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normalized = f32_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = f32_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t magnitude = two_w < (1u << 27) ? bits_f32(denormalized) : bits_f32(normalized);
    return f32_bits(sign | magnitude);
}

CKPT_INLINE uint16_t float_to_half(float f) {
    float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = bits_f32(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = f32_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = bits_f32(base);
    const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

CKPT_INLINE float bf16_to_float(uint16_t b) { return f32_bits((uint32_t)b << 16); }

// Round to nearest even; NaN becomes the canonical quiet NaN, as c10::BFloat16 does.
CKPT_INLINE uint16_t float_to_bf16(float f) {
    const uint32_t u = bits_f32(f);
    const uint16_t rounded = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    return f != f ? (uint16_t)0x7FC0u : rounded;
}

// ATen's `add(other, alpha)` on float16/bfloat16 computes `self + other * alpha` in float with one
// FMA in its vector loop, but in the 2-byte type's own arithmetic (the product rounded, then the
// sum) in its scalar tail: the last (chunk length mod 32) elements of each chunk at::parallel_for
// hands a thread. ATen's vectorized_loop takes two vectors per iteration, and add's kernel is the
// 32-byte-vector one even where ATen reports AVX-512 (torch 2.15 here: tails of 4 and 24 elements
// on both, for 100 elements and for 32824-element chunks).
enum { ADD_LOOP_STEP = 32 };

/// Whether element `i` of a `numel`-element tensor falls in the scalar tail of its thread's chunk,
/// for chunks of `chunk` elements (the options' `add_chunk`).
CKPT_INLINE int in_add_tail(int64_t i, int64_t chunk, int64_t numel) {
    if (chunk <= 0) chunk = 1;
    const int64_t start = i / chunk * chunk;
    const int64_t end = start + chunk < numel ? start + chunk : numel;
    return i >= end - (end - start) % ADD_LOOP_STEP;
}

/// `self + other * alpha` as ATen's add rounds it for a 2-byte type (values widened to float,
/// `lowp_alpha` already rounded to the type): FMA in the vector loop, rounded product in the tail.
#define CKPT_REDUCED_ADD(TO_FLOAT, FROM_FLOAT, self, other, lowp_alpha, tail)                             \
    ((tail) ? TO_FLOAT(FROM_FLOAT((self) + TO_FLOAT(FROM_FLOAT((other) * (lowp_alpha)))))                  \
            : TO_FLOAT(FROM_FLOAT(fma_f32((other), (lowp_alpha), (self)))))

// MARK: Instruction-set variants

#if defined(__x86_64__)
#define CKPT_X86 1
#define CKPT_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,f16c")))
#define CKPT_AVX2 __attribute__((target("avx2,fma,f16c")))
/// The CPU runs the AVX-512 (F/VL/BW/DQ with FMA and F16C) or AVX2 (with FMA and F16C) variants.
int ckpt_cpu_has_avx512(void);
int ckpt_cpu_has_avx2(void);

/// Defines `void NAME PARAMS` that runs `BODY ARGS` compiled for AVX-512, for AVX2 or for the
/// baseline: the variant ckpt_isa_resolve(ISA) picks. BODY is an always-inline function, so each
/// variant is its own vectorized copy of it. PARAMS and ARGS are parenthesized lists.
#define CKPT_ISA_VARIANTS(NAME, BODY, ISA, PARAMS, ARGS)                                                  \
    static void NAME##_baseline PARAMS { BODY ARGS; }                                                     \
    CKPT_AVX512 static void NAME##_avx512 PARAMS { BODY ARGS; }                                           \
    CKPT_AVX2 static void NAME##_avx2 PARAMS { BODY ARGS; }                                               \
    void NAME PARAMS {                                                                                    \
        switch (ckpt_isa_resolve(ISA)) {                                                                  \
        case CKPT_ISA_AVX512: NAME##_avx512 ARGS; return;                                                 \
        case CKPT_ISA_AVX2: NAME##_avx2 ARGS; return;                                                     \
        default: NAME##_baseline ARGS; return;                                                            \
        }                                                                                                 \
    }
#else
#define CKPT_ISA_VARIANTS(NAME, BODY, ISA, PARAMS, ARGS) \
    void NAME PARAMS { BODY ARGS; }
#endif

#endif
