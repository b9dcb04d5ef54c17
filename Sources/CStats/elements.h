// Shared by the statistics and closeness kernels: exact decoders of the float formats, and which
// instruction-set variant to run. Not part of the module's interface (include/ holds that).

#ifndef CKPT_STATS_ELEMENTS_H
#define CKPT_STATS_ELEMENTS_H

#include "ckpt_kernels.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CKPT_STATS_X86 1
#define CKPT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define CKPT_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,popcnt")))
#endif

static inline float bf16_to_float(uint16_t bits) {
    uint32_t word = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &word, sizeof value);
    return value;
}

static inline float f16_to_float(uint16_t bits) {
    uint32_t sign = (uint32_t)(bits & 0x8000) << 16;
    uint32_t exponent = (bits >> 10) & 0x1F;
    uint32_t mantissa = bits & 0x3FF;
    uint32_t word;
    if (exponent == 0x1F) {
        word = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent == 0) {
        float magnitude = (float)mantissa * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    } else {
        word = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    float value;
    memcpy(&value, &word, sizeof value);
    return value;
}

typedef double (*element_reader)(const void *elements, size_t index);

static inline double read_f32(const void *e, size_t i) { float v; memcpy(&v, (const char *)e + 4 * i, 4); return v; }
static inline double read_f64(const void *e, size_t i) { double v; memcpy(&v, (const char *)e + 8 * i, 8); return v; }
static inline double read_bf16(const void *e, size_t i) { uint16_t b; memcpy(&b, (const char *)e + 2 * i, 2); return bf16_to_float(b); }
static inline double read_f16(const void *e, size_t i) { uint16_t b; memcpy(&b, (const char *)e + 2 * i, 2); return f16_to_float(b); }

/// 2 for AVX-512, 1 for AVX2, 0 for portable code: what the CPU has, capped by the CKPT_ISA
/// environment variable (CKernels reads it) and by ckpt_stats_limit_level.
int ckpt_stats_level(void);

#endif
