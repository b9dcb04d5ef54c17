// Which instruction-set variant of the kernels runs: the widest the CPU has, capped by CKPT_ISA.
#include "kernel_support.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#if CKPT_X86
int ckpt_cpu_has_avx512(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

int ckpt_cpu_has_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif

int ckpt_isa_available(ckpt_isa isa) {
    switch (isa) {
    case CKPT_ISA_BEST:
    case CKPT_ISA_BASELINE: return 1;
#if CKPT_X86
    case CKPT_ISA_AVX2: return ckpt_cpu_has_avx2();
    case CKPT_ISA_AVX512: return ckpt_cpu_has_avx512();
#else
    case CKPT_ISA_AVX2:
    case CKPT_ISA_AVX512: return 0;
#endif
    }
    return 0;
}

// CKPT_ISA, read once: lets a whole run (tests, benchmarks, a user's job) exercise a narrower
// variant than the CPU allows, to compare variants on one machine.
static ckpt_isa environment_limit = CKPT_ISA_BEST;
static pthread_once_t environment_once = PTHREAD_ONCE_INIT;

static void read_environment_limit(void) {
    const char *value = getenv("CKPT_ISA");
    if (value == NULL || *value == 0) return;
    if (strcmp(value, "avx512") == 0) environment_limit = CKPT_ISA_AVX512;
    else if (strcmp(value, "avx2") == 0) environment_limit = CKPT_ISA_AVX2;
    else if (strcmp(value, "baseline") == 0) environment_limit = CKPT_ISA_BASELINE;
    else fprintf(stderr, "ckpt: ignoring CKPT_ISA=%s (expected avx512, avx2 or baseline)\n", value);
}

ckpt_isa ckpt_isa_selected(void) {
    pthread_once(&environment_once, read_environment_limit);
    const ckpt_isa order[] = {CKPT_ISA_AVX512, CKPT_ISA_AVX2, CKPT_ISA_BASELINE};
    for (int index = 0; index < 3; index++) {
        const ckpt_isa isa = order[index];
        if (environment_limit != CKPT_ISA_BEST && isa > environment_limit) continue;
        if (ckpt_isa_available(isa)) return isa;
    }
    return CKPT_ISA_BASELINE;
}

ckpt_isa ckpt_isa_resolve(ckpt_isa requested) {
    if (requested == CKPT_ISA_BEST) return ckpt_isa_selected();
    // A variant the CPU lacks runs as the widest narrower one it has.
    for (ckpt_isa isa = requested; isa > CKPT_ISA_BASELINE; isa--)
        if (ckpt_isa_available(isa)) return isa;
    return CKPT_ISA_BASELINE;
}
