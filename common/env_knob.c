/* common/env_knob.c — tuning knobs read from the environment (see env_knob.h). */
#include "env_knob.h"

#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int env_duration_ms(const char *name, uint64_t min_ms, uint64_t *ret, char *err, size_t errlen)
{
    const char *v = getenv(name);
    uint64_t ms;

    if (!v || !*v)
        return 0;
    if (parse_duration_ms(v, &ms) < 0 || ms < min_ms) {
        snprintf(err, errlen, "bad %s '%.40s': a duration of at least %" PRIu64 "ms, such as "
                 "500ms, 30s or 24h", name, v, min_ms);
        return -EINVAL;
    }
    *ret = ms;
    return 0;
}
