/* common/log.c — structured one-line logging to stderr (`ts level program key=value`).
 * Owns the process-wide program name and log level. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_program = "stf";
static volatile int log_level_min = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *program, enum log_level level)
{
    log_program = program;
    log_level_min = level;
}

void log_set_level(enum log_level level)
{
    log_level_min = level;
}

enum log_level log_get_level(void)
{
    return (enum log_level) log_level_min;
}

int log_level_parse(const char *s, enum log_level *ret)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *ret = (enum log_level) i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int r;
    va_list ap;

    if ((int) level < log_level_min)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s ", ts.tv_nsec / 1000000,
                 level_names[level], log_program);
    if (r > 0)
        n += (size_t) r;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (r > 0)
        n += (size_t) r;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2; /* truncated: keep one line */
    line[n++] = '\n';
    (void) !write(STDERR_FILENO, line, n);
}
