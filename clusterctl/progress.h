/* clusterctl/progress.h — the progress display of long commands (rebalance --wait, verify):
 * on a terminal one line rewritten in place, otherwise a plain line every few seconds; with
 * files and bytes done, the rate since the start and the estimated time left. */
#ifndef STF_CLUSTERCTL_PROGRESS_H
#define STF_CLUSTERCTL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define PROGRESS_LINE_EVERY_S 10 /* without a terminal: one line this often */
#define PROGRESS_RETRY_S 120     /* a follow loop waits this long for the database to come back */

struct progress {
    FILE *out;
    bool tty;
    bool open_line;   /* a tty line is shown and not ended yet */
    time_t last_line; /* of the last plain line */
    uint64_t t0_ms;   /* monotonic, at the first sample */
    uint64_t bytes0;  /* bytes done at the first sample */
    bool started;
    uint64_t fail_since_ms; /* monotonic, of the first failed read in a row; 0 when none */
};

/* Shows on out (usually stdout or stderr); tty decided by isatty(). */
void progress_init(struct progress *p, FILE *out);

/* Bytes per second since the first call, and the seconds left for bytes_total (-1 unknown). */
void progress_rate(struct progress *p, uint64_t bytes_done, uint64_t bytes_total, double *ret_rate,
                   int64_t *ret_eta_s);

/* "LABEL [######......]  42%  12/40 files  1.2 MiB/4.0 MiB  300 KiB/s  ETA 0:12"; note, when
 * non-empty, follows in parentheses. Totals of 0 leave their part out. */
void progress_format(char *out, size_t outlen, const char *label, uint64_t files_done,
                     uint64_t files_total, uint64_t bytes_done, uint64_t bytes_total, double rate,
                     int64_t eta_s, const char *note);

/* Shows line: in place on a tty, else as a new line when force or PROGRESS_LINE_EVERY_S
 * passed since the last one. */
void progress_show(struct progress *p, const char *line, bool force);

/* A follow loop's read of the job failed (failed) or worked: true while the failures have
 * lasted less than PROGRESS_RETRY_S (the database restarting must not end a --wait: the job
 * goes on), so the caller sleeps and reads again; false to report the error (or go on). */
bool progress_retry(struct progress *p, bool failed);

/* Ends a line shown in place (so what follows starts on a fresh line). */
void progress_end(struct progress *p);

/* "0:07", "12:30", "3:05:00"; "--:--" for a negative (unknown) time. */
void progress_duration(int64_t s, char *out, size_t outlen);

/* Sleeps ms milliseconds (interrupted sleeps resume). */
void progress_sleep_ms(long ms);

#endif
