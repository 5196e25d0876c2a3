/* common/log.h — one line per event on stderr: `ts level program key=value ...`.
 * The program sets its name and level once at start; everything else just logs. */
#ifndef STF_LOG_H
#define STF_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the program name (not copied: pass a string literal) and the minimum level. */
void log_init(const char *program, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parses "debug|info|warn|error". Returns 0 and sets *ret, or -EINVAL. */
int log_level_parse(const char *s, enum log_level *ret);

/* Logs one line: fmt is the key=value part, e.g. log_msg(LOG_INFO, "event=start port=%u", p).
 * The whole line is written with a single write(2), so lines of concurrent threads never mix. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
