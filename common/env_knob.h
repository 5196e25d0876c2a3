/* common/env_knob.h — tuning knobs read from the environment (STF_* variables: test and
 * benchmark settings kept out of the config file); a bad value is a start-up error. */
#ifndef STF_ENV_KNOB_H
#define STF_ENV_KNOB_H

#include <stddef.h>
#include <stdint.h>

/* $name as a duration (parse_duration_ms: 500ms, 30s, 24h) of at least min_ms into *ret; unset
 * or empty leaves *ret alone. Returns 0, or -EINVAL with a one-line reason in err. */
int env_duration_ms(const char *name, uint64_t min_ms, uint64_t *ret, char *err, size_t errlen);

#endif
