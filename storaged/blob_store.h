/* storaged/blob_store.h — the files of one storage root: temp files under ROOT/.tmp, durable
 * commit (fsync, rename, directory fsync), reads, deletes, and the live file count. */
#ifndef STF_STORAGED_BLOB_STORE_H
#define STF_STORAGED_BLOB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define BLOB_STORE_TMP_DIR ".tmp"
#define BLOB_STORE_NEAR_PREFIX ".put-" /* temp files of blob_tmp_create_near, in ROOT/aa/bb */

struct blob_store;

/* An upload in progress: a temp file in ROOT/.tmp. fd < 0 once committed or discarded. */
struct blob_tmp {
    int fd;
    bool near;     /* made by blob_tmp_create_near: name is "aa/bb/.put-..." under the root */
    char name[64]; /* relative to ROOT/.tmp, or to the root when near */
};

/* Opens the root directory (which must exist), creates ROOT/.tmp when missing and removes
 * every temp file left there and every ROOT/aa/bb/.put-* (*ret_tmp_removed), then counts the
 * blobs under the fan-out directories (*ret_files). fsync = the storaged.fsync setting. *ret is
 * freed with blob_store_free. Returns 0 or -errno, with a one-line reason in err. */
int blob_store_open(const char *root, bool fsync, struct blob_store **ret,
                    unsigned *ret_tmp_removed, uint64_t *ret_files, char *err, size_t errlen);
void blob_store_free(struct blob_store *s);

const char *blob_store_root(const struct blob_store *s);
int blob_store_root_fd(const struct blob_store *s);

/* Number of blobs: counted at open, then kept up to date by commit and delete. */
uint64_t blob_store_files(const struct blob_store *s);

/* Opens a blob for reading (O_RDONLY, no symlinks) and fstat()s it. The name must be valid.
 * Returns 0 with *ret_fd owned by the caller, -ENOENT when there is no such blob, or -errno. */
int blob_store_open_read(struct blob_store *s, const char *name, size_t len, int *ret_fd,
                         struct stat *ret_st);

/* Creates a fresh temp file. Returns 0 or -errno. */
int blob_tmp_create(struct blob_store *s, struct blob_tmp *ret);
/* Creates a fresh temp file in the blob's own fan-out directory, ROOT/aa/bb/.put-... (making
 * the directories as needed; flags as blob_tmp_commit_flags), so that the file system allocates
 * it near where it will live: for a stream of new files (a whole-disk copy) far cheaper than one
 * shared temp directory (ext4 then keeps scanning one busy block group for free inodes).
 * Commit and discard work the same; leftovers of a crash are removed at the next start.
 * Returns 0 or -errno (-EINVAL for an invalid name). */
int blob_tmp_create_near(struct blob_store *s, const char *name, size_t len, unsigned flags,
                         struct blob_tmp *ret);
/* Appends len bytes. Returns 0 or -errno (-ENOSPC, -EIO...). */
int blob_tmp_write(struct blob_tmp *t, const void *data, size_t len);
/* Closes and removes the temp file; harmless when already committed or discarded. */
void blob_tmp_discard(struct blob_store *s, struct blob_tmp *t);
/* Makes the temp file visible as the blob name: fsyncs it, renames it over ROOT/aa/bb/name
 * (creating and fsyncing fan-out directories as needed) and fsyncs the directory; fsyncs are
 * skipped when the store was opened with fsync off. Replaces an existing blob atomically.
 * The temp file is consumed in every case. Returns 0 or -errno. */
int blob_tmp_commit(struct blob_store *s, struct blob_tmp *t, const char *name, size_t len);

/* blob_tmp_commit with flags. BLOB_COMMIT_NOSYNC skips every fsync (file, new fan-out
 * directories, directory entry): for the whole-disk copy, which makes a batch durable at once
 * with blob_store_sync() before it records its progress. */
#define BLOB_COMMIT_NOSYNC 1u
int blob_tmp_commit_flags(struct blob_store *s, struct blob_tmp *t, const char *name, size_t len,
                          unsigned flags);
/* syncfs(2) of the root's file system (nothing when the store was opened with fsync off).
 * Returns 0 or -errno. */
int blob_store_sync(struct blob_store *s);

/* Removes a blob and fsyncs its directory. Returns 0, -ENOENT, or -errno. */
int blob_store_delete(struct blob_store *s, const char *name, size_t len);

/* statvfs(2) of the root. Returns 0 or -errno. */
int blob_store_statvfs(struct blob_store *s, struct statvfs *ret);

#endif
