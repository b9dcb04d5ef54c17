#ifndef CKPT_KERNELS_H
#define CKPT_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Returns the kernel library's version, so Swift can check it linked the expected kernels.
int ckpt_kernels_version(void);

#endif
