/* clusterctl/progress.c — progress lines for long commands: a bar with files, bytes, rate and
 * time left, rewritten in place on a terminal, printed every few seconds otherwise. */
#include "progress.h"

#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_BAR 24

static uint64_t progress_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

void progress_init(struct progress *p, FILE *out)
{
    memset(p, 0, sizeof(*p));
    p->out = out;
    p->tty = isatty(fileno(out)) == 1;
}

void progress_rate(struct progress *p, uint64_t bytes_done, uint64_t bytes_total, double *ret_rate,
                   int64_t *ret_eta_s)
{
    uint64_t now = progress_now_ms();
    double secs;

    if (!p->started) {
        p->started = true;
        p->t0_ms = now;
        p->bytes0 = bytes_done;
    }
    secs = (double) (now - p->t0_ms) / 1000.0;
    *ret_rate =
        secs >= 0.5 && bytes_done >= p->bytes0 ? (double) (bytes_done - p->bytes0) / secs : 0;
    if (bytes_total > bytes_done && *ret_rate > 0)
        *ret_eta_s = (int64_t) ((double) (bytes_total - bytes_done) / *ret_rate + 0.5);
    else
        *ret_eta_s = bytes_total && bytes_done >= bytes_total ? 0 : -1;
}

bool progress_retry(struct progress *p, bool failed)
{
    uint64_t now = progress_now_ms();

    if (!failed) {
        p->fail_since_ms = 0;
        return false;
    }
    if (!p->fail_since_ms)
        p->fail_since_ms = now;
    return now - p->fail_since_ms < (uint64_t) PROGRESS_RETRY_S * 1000;
}

void progress_duration(int64_t s, char *out, size_t outlen)
{
    if (s < 0)
        snprintf(out, outlen, "--:--");
    else if (s >= 3600)
        snprintf(out, outlen, "%" PRId64 ":%02d:%02d", s / 3600, (int) (s / 60 % 60),
                 (int) (s % 60));
    else
        snprintf(out, outlen, "%d:%02d", (int) (s / 60), (int) (s % 60));
}

void progress_format(char *out, size_t outlen, const char *label, uint64_t files_done,
                     uint64_t files_total, uint64_t bytes_done, uint64_t bytes_total, double rate,
                     int64_t eta_s, const char *note)
{
    char done[32], total[32], speed[32], eta[32], bar[PROGRESS_BAR + 1];
    double frac = bytes_total   ? (double) bytes_done / (double) bytes_total
                  : files_total ? (double) files_done / (double) files_total
                                : 0;
    size_t n;
    int fill;

    if (frac > 1)
        frac = 1;
    fill = (int) (frac * PROGRESS_BAR);
    for (int i = 0; i < PROGRESS_BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[PROGRESS_BAR] = '\0';
    n = (size_t) snprintf(out, outlen, "%s [%s] %3d%%", label, bar, (int) (frac * 100));
    if (files_total && n < outlen)
        n += (size_t) snprintf(out + n, outlen - n, "  %" PRIu64 "/%" PRIu64 " files", files_done,
                               files_total);
    if (bytes_total && n < outlen) {
        out_bytes(bytes_done, done, sizeof(done));
        out_bytes(bytes_total, total, sizeof(total));
        n += (size_t) snprintf(out + n, outlen - n, "  %s/%s", done, total);
    }
    if (n < outlen) {
        out_bytes((uint64_t) rate, speed, sizeof(speed));
        progress_duration(eta_s, eta, sizeof(eta));
        n += (size_t) snprintf(out + n, outlen - n, "  %s/s  ETA %s", speed, eta);
    }
    if (note && *note && n < outlen)
        snprintf(out + n, outlen - n, "  (%s)", note);
}

void progress_show(struct progress *p, const char *line, bool force)
{
    if (p->tty) {
        fprintf(p->out, "\r\033[K%s", line);
        p->open_line = true;
    } else if (force || time(NULL) - p->last_line >= PROGRESS_LINE_EVERY_S) {
        fprintf(p->out, "%s\n", line);
        p->last_line = time(NULL);
    }
    fflush(p->out);
}

void progress_end(struct progress *p)
{
    if (p->open_line) {
        fprintf(p->out, "\r\033[K");
        fflush(p->out);
    }
    p->open_line = false;
}

void progress_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}
