/* repaird/recover_manifest.h — a storage's manifest (GET /_rsync/manifest) for the whole-disk
 * copy: spooled to an unnamed temp file, checked complete (its end line), then read back entry
 * by entry in byte order of the paths. Memory does not grow with the number of files. */
#ifndef REPAIRD_RECOVER_MANIFEST_H
#define REPAIRD_RECOVER_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "blob_path.h"

struct throttle;

struct manifest_entry {
    char rel[BLOB_REL_MAX]; /* "aa/bb/NAME", checked with blob_rel_path_valid */
    uint64_t size;
    int64_t mtime_ns;
};

/* NAME, inside rel (so that copies of an entry stay right). */
static inline const char *manifest_name(const struct manifest_entry *e)
{
    return e->rel + BLOB_FANOUT_LEN;
}

struct manifest_file {
    FILE *f;             /* the spool, positioned at the next entry */
    uint64_t files;      /* entries, as the end line counts them */
    uint64_t bytes;      /* their sizes added up */
    uint64_t wire_bytes; /* bytes of the manifest received */
    uint64_t read;       /* entries read back so far */
    bool ended;          /* the end line was read */
};

/* Called for every piece received; a negative return aborts the fetch with that error. */
typedef int (*manifest_tick_fn)(void *arg);

/* GETs uri/_rsync/manifest?after=AFTER (after "" = everything) into a spool, charging the
 * throttle (may be NULL). Returns 0 and fills *ret (release with manifest_close), or -errno
 * with one line in err: -EIO/-ETIMEDOUT/-ECONNREFUSED (transport or HTTP error), -EPROTO (a
 * stream without its end line, i.e. cut short), -ECANCELED/-ESTALE from tick. */
int manifest_fetch(const char *uri, const char *after, struct throttle *t, manifest_tick_fn tick,
                   void *tick_arg, struct manifest_file *ret, char *err, size_t errlen);

/* Reads the next entry. Returns 1, 0 after the last one, -EPROTO for a malformed line (the
 * spool was checked at fetch: only a peer that sends nonsense gets there). */
int manifest_next(struct manifest_file *m, struct manifest_entry *e);

/* Parses one manifest line ("REL SIZE SEC.NSEC", no newline). Returns 0 or -EPROTO. */
int manifest_parse_line(const char *line, struct manifest_entry *e);

void manifest_close(struct manifest_file *m);

#endif
