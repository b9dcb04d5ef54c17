#include "ckpt_kernels.h"

int ckpt_kernels_version(void) { return 1; }
