// scripts/arm64/check.sh: runs every Adagrad kernel (exact sqrt, all paths, all dtypes, wd on/off), every SGD kernel (all
// paths, all dtypes, plain, momentum with dampening and weight decay, Nesterov with maximize) and the statistics kernels on
// fixed inputs and prints an FNV-1a hash of each one's outputs: the same on every architecture.
#include "ckpt_kernels.h"
#include "ckpt_stats.h"
#include <stdio.h>
#include <string.h>
#include <stdint.h>
static uint64_t h = 1469598103934665603ull;
static void mix(const void *p, size_t n) { const unsigned char *b = p; for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ull; } }
enum { N = 1000 };
int main(void) {
    float pf[N], gf[N], sf[N]; double pd[N], gd[N], sd[N]; uint16_t ph[N], gh[N], sh[N];
    for (int path = 0; path < 3; path++) for (int wd = 0; wd < 2; wd++) for (int t = 0; t < 4; t++) {
        uint32_t state = 12345u + (uint32_t)(path * 8 + wd * 4 + t);
        for (int i = 0; i < N; i++) {
            state = state * 1664525u + 1013904223u; float a = (float)((int32_t)state >> 8) * 0x1p-20f;
            state = state * 1664525u + 1013904223u; float b = (float)((int32_t)state >> 8) * 0x1p-22f;
            pf[i] = a; gf[i] = b; sf[i] = a * a * 0.01f; pd[i] = a; gd[i] = b; sd[i] = (double)a * a * 0.01;
            uint32_t ua, ub; memcpy(&ua, &a, 4); memcpy(&ub, &b, 4);
            ph[i] = (uint16_t)(ua >> 16); gh[i] = (uint16_t)(ub >> 16); sh[i] = 0x3c00;  /* bf16-ish bits; f16 reads them as halves */
        }
        ckpt_adagrad_options o = {0};
        o.clr = 0.01; o.eps = 1e-10; o.weight_decay = wd ? 0.1 : 0; o.numel = N; o.add_chunk = 700;
        o.sqrt_f32_kind = CKPT_SQRT_EXACT; o.sqrt_f64_kind = CKPT_SQRT_EXACT; o.isa = CKPT_ISA_BASELINE;
        for (int step = 0; step < 3; step++) switch (t) {
            case 0: ckpt_adagrad_f32((ckpt_optimizer_path)path, pf, gf, sf, 0, N, &o); break;
            case 1: ckpt_adagrad_f64((ckpt_optimizer_path)path, pd, gd, sd, 0, N, &o); break;
            case 2: ckpt_adagrad_f16((ckpt_optimizer_path)path, ph, gh, sh, 0, N, &o); break;
            case 3: ckpt_adagrad_bf16((ckpt_optimizer_path)path, ph, gh, sh, 0, N, &o); break;
        }
        if (t == 0) { mix(pf, sizeof pf); mix(sf, sizeof sf); }
        if (t == 1) { mix(pd, sizeof pd); mix(sd, sizeof sd); }
        if (t >= 2) { mix(ph, sizeof ph); mix(sh, sizeof sh); }
    }
    printf("adagrad %016llx\n", (unsigned long long)h);
    h = 1469598103934665603ull;
    const ckpt_scalar_type scalars[4] = {CKPT_SCALAR_F32, CKPT_SCALAR_F64, CKPT_SCALAR_F16, CKPT_SCALAR_BF16};
    for (int path = 0; path < 3; path++) for (int flags = 0; flags < 3; flags++) for (int t = 0; t < 4; t++) {
        uint32_t state = 54321u + (uint32_t)(path * 16 + flags * 4 + t);
        for (int i = 0; i < N; i++) {
            state = state * 1664525u + 1013904223u; float a = (float)((int32_t)state >> 8) * 0x1p-20f;
            state = state * 1664525u + 1013904223u; float b = (float)((int32_t)state >> 8) * 0x1p-22f;
            pf[i] = a; gf[i] = b; pd[i] = a; gd[i] = b;
            uint32_t ua, ub; memcpy(&ua, &a, 4); memcpy(&ub, &b, 4);
            ph[i] = (uint16_t)(ua >> 16); gh[i] = (uint16_t)(ub >> 16);
        }
        ckpt_sgd_task task = {.scalar = scalars[t], .path = (ckpt_optimizer_path)path};
        task.param = t == 0 ? (void *)pf : t == 1 ? (void *)pd : (void *)ph;
        task.grad = t == 0 ? (void *)gf : t == 1 ? (void *)gd : (void *)gh;
        task.momentum_buffer = t == 0 ? (void *)sf : t == 1 ? (void *)sd : (void *)sh;
        ckpt_sgd_options *o = &task.options;
        o->lr = 0.01; o->momentum = flags ? 0.9 : 0; o->dampening = flags == 1 ? 0.25 : 0;
        o->weight_decay = flags == 1 ? 0.01 : 0; o->nesterov = flags == 2; o->maximize = flags == 2;
        o->numel = N; o->add_chunk = 700; o->isa = CKPT_ISA_BASELINE;
        for (int step = 0; step < 3; step++) {
            o->first_step = step == 0;
            ckpt_sgd_task_range(&task, 0, N);
        }
        if (t == 0) { mix(pf, sizeof pf); mix(sf, sizeof sf); }
        if (t == 1) { mix(pd, sizeof pd); mix(sd, sizeof sd); }
        if (t >= 2) { mix(ph, sizeof ph); mix(sh, sizeof sh); }
    }
    printf("sgd %016llx\n", (unsigned long long)h);
    h = 1469598103934665603ull;
    ckpt_stats_limit_level(0);
    ckpt_block_moments m;
    ckpt_block_moments_f32(pf, N, &m); mix(&m, sizeof m);
    ckpt_block_moments_f64(pd, N, &m); mix(&m, sizeof m);
    ckpt_block_moments_f16(ph, N, &m); mix(&m, sizeof m);
    ckpt_block_moments_bf16(ph, N, &m); mix(&m, sizeof m);
    printf("stats %016llx mean-ish %.17g\n", (unsigned long long)h, m.sum);
    return 0;
}
