#ifndef CKPT_CSTATS_H
#define CKPT_CSTATS_H

// The module's umbrella header. With an umbrella directory instead, a header added later is not
// seen by a build folder's cached module (clang checks the headers it read, not the directory), and
// Swift code using the new declarations fails to compile until the cache is deleted.
#include "ckpt_stats.h"
#include "ckpt_closeness.h"

#endif
