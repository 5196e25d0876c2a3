/* clusterctl/verify_scan.h — the two scans of `clusterctl verify`: each storage's file list
 * (storaged's /_rsync/manifest) against the metadata, for files that belong to no object, and
 * each object of the cluster against every copy, for copies missing, too short or too long,
 * or with another MD5. Memory does not grow with the cluster: both scans go in batches. */
#ifndef STF_CLUSTERCTL_VERIFY_SCAN_H
#define STF_CLUSTERCTL_VERIFY_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blob_path.h"
#include "modes.h"
#include "progress.h"

struct db;

#define VF_SAMPLES_PER_KIND 10
#define VF_EXTRA_MAX 1000000 /* extra files remembered for --repair in one run */

enum vf_kind { VF_MISSING = 0, VF_CORRUPT, VF_EXTRA, VF__KINDS };

struct vf_storage {
    int64_t id;
    char name[64];
    char uri[256]; /* without a trailing '/' */
    enum storage_mode mode;
    bool checked;                             /* rw, ro or spare: it must hold every object */
    bool manifest_ok;                         /* its file list was read to the end */
    char error[200];                          /* why not, or "" */
    uint64_t files;                           /* files that belong to an object */
    uint64_t missing, corrupt, unchecked;     /* copies; unchecked = could not be read */
    uint64_t extra, extra_bytes, extra_young; /* files of no object; young = under min age */
    uint64_t pending_delete; /* files of no object that a delete_files job will remove */
};

struct vf_sample {
    enum vf_kind kind;
    size_t storage;
    int64_t object_id; /* 0 for extra files */
    char what[320];    /* "bucket/name (internal NAME)" or "aa/bb/NAME" */
    char detail[200];
};

struct vf_extra {
    size_t storage;
    char name[BLOB_NAME_MAX + 1];
    uint64_t size;
    int64_t mtime; /* unix seconds */
};

struct vf {
    /* inputs */
    int64_t cluster_id;
    char cluster[64];
    bool quick;         /* HEAD (size) instead of reading every copy (MD5) */
    uint64_t rate;      /* bytes per second read from the storages; 0 = unlimited */
    uint64_t min_age_s; /* extra files younger than this are reported, never removed */
    bool progress;      /* show progress on stderr */
    struct vf_storage *st;
    size_t nst;
    /* results */
    struct vf_extra *extra;
    size_t nextra, extra_cap;
    bool extra_truncated; /* more than VF_EXTRA_MAX: --repair removes the first ones */
    int64_t *bad;         /* ids of objects with a missing or corrupt copy */
    size_t nbad, bad_cap;
    struct vf_sample samples[VF__KINDS * VF_SAMPLES_PER_KIND];
    size_t nsamples, per_kind[VF__KINDS];
    uint64_t objects_total, objects_done, objects_changed, bytes_total, bytes_read;
    uint64_t elapsed_ms;
    struct progress pg;
};

/* Loads the cluster (by name) and its storages, and the totals. Returns 0, -ENOENT (no such
 * cluster), -EIO, -ENOMEM. Release with vf_release(). */
int vf_load(struct db *db, const char *cluster, struct vf *v);
void vf_release(struct vf *v);

/* Reads every checked storage's manifest and classifies its files. Returns 0 (a storage whose
 * list could not be read has manifest_ok false), -EIO (PostgreSQL), -ENOMEM. */
int vf_scan_extra(struct db *db, struct vf *v);

/* Checks every copy of every object of the cluster. Returns 0, -EIO, -ENOMEM. */
int vf_scan_objects(struct db *db, struct vf *v);

/* Of names[0..n) (files on a storage of the cluster), marks in referenced[] those an object of
 * the cluster names and in pending[] those an open delete_files job of the cluster names.
 * One consistent snapshot. Returns 0 or -EIO. */
int vf_classify(struct db *db, int64_t cluster_id, char (*names)[BLOB_NAME_MAX + 1], size_t n,
                bool *referenced, bool *pending);

#endif
