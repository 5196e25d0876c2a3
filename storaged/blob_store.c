/* storaged/blob_store.c — the files of one storage root: uploads go to ROOT/.tmp and become
 * visible only by rename after fsync; the blob count is kept exact under concurrency. */
#include "blob_store.h"

#include "blob_path.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A rename or unlink and the count update it implies happen under the lock of the name's
 * stripe, so concurrent PUT/DELETE of one name keep the count exact. */
#define BLOB_STORE_STRIPES 64

struct blob_store {
    char *root;
    int root_fd;
    int tmp_fd;
    bool fsync;
    atomic_uint_fast64_t files;
    atomic_uint_fast64_t tmp_seq;
    pthread_mutex_t stripes[BLOB_STORE_STRIPES];
};

static bool is_hex2(const char *s)
{
    for (int i = 0; i < 2; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return s[2] == '\0';
}

static int fsync_dir_at(int dir_fd, const char *rel)
{
    int fd, r = 0;

    fd = openat(dir_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        r = -errno;
    close(fd);
    return r;
}

/* Removes every entry of ROOT/.tmp (only files are expected there). */
static int store_clean_tmp(struct blob_store *s, unsigned *ret_removed)
{
    DIR *d = NULL;
    struct dirent *de;
    unsigned removed = 0;
    int fd, r = 0;

    fd = openat(s->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (!d) {
        r = -errno;
        close(fd);
        goto out;
    }
    while ((errno = 0, de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(s->tmp_fd, de->d_name, 0) < 0) {
            log_warn("event=tmp_cleanup_failed file=%s/%s/%s error=\"%s\"", s->root,
                     BLOB_STORE_TMP_DIR, de->d_name, strerror(errno));
            continue;
        }
        removed++;
    }
    if (errno)
        r = -errno;
out:
    if (d)
        closedir(d);
    *ret_removed = removed;
    return r;
}

/* Counts valid blobs in one ROOT/aa/bb directory. */
static int store_count_leaf(int bb_fd, const char *aa, const char *bb, uint64_t *count,
                            unsigned *removed)
{
    char rel[BLOB_REL_MAX];
    struct dirent *de;
    DIR *d = fdopendir(bb_fd);
    int r = 0;

    if (!d) {
        r = -errno;
        close(bb_fd);
        return r;
    }
    while ((errno = 0, de = readdir(d))) {
        size_t n = strlen(de->d_name);

        if (strncmp(de->d_name, BLOB_STORE_NEAR_PREFIX, strlen(BLOB_STORE_NEAR_PREFIX)) == 0) {
            /* a temp file of blob_tmp_create_near left by a crash */
            if (unlinkat(dirfd(d), de->d_name, 0) == 0)
                (*removed)++;
            continue;
        }
        if (de->d_name[0] == '.' || n > BLOB_NAME_MAX)
            continue;
        if (de->d_type != DT_REG) {
            struct stat st;

            if (de->d_type != DT_UNKNOWN ||
                fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                continue;
        }
        memcpy(rel, aa, 2); /* n <= BLOB_NAME_MAX: "aa/bb/<name>" fits */
        rel[2] = '/';
        memcpy(rel + 3, bb, 2);
        rel[5] = '/';
        memcpy(rel + BLOB_FANOUT_LEN, de->d_name, n + 1);
        if (blob_rel_path_valid(rel, BLOB_FANOUT_LEN + n))
            (*count)++;
    }
    if (errno)
        r = -errno;
    closedir(d);
    return r;
}

/* Walks ROOT/aa/bb/ and counts the blobs whose path matches their name. */
static int store_count(struct blob_store *s, uint64_t *ret, unsigned *removed)
{
    DIR *root = NULL, *aa_dir = NULL;
    struct dirent *a, *b;
    uint64_t count = 0;
    int fd, r = 0;

    fd = openat(s->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    root = fdopendir(fd);
    if (!root) {
        r = -errno;
        close(fd);
        goto out;
    }
    while ((a = readdir(root))) {
        if (!is_hex2(a->d_name))
            continue;
        fd = openat(s->root_fd, a->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue; /* not a directory */
        aa_dir = fdopendir(fd);
        if (!aa_dir) {
            r = -errno;
            close(fd);
            goto out;
        }
        while ((b = readdir(aa_dir))) {
            if (!is_hex2(b->d_name))
                continue;
            fd = openat(dirfd(aa_dir), b->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0)
                continue;
            r = store_count_leaf(fd, a->d_name, b->d_name, &count, removed);
            if (r < 0)
                goto out;
        }
        closedir(aa_dir);
        aa_dir = NULL;
    }
    *ret = count;
out:
    if (aa_dir)
        closedir(aa_dir);
    if (root)
        closedir(root);
    return r;
}

int blob_store_open(const char *root, bool fsync, struct blob_store **ret,
                    unsigned *ret_tmp_removed, uint64_t *ret_files, char *err, size_t errlen)
{
    struct blob_store *s;
    uint64_t files = 0;
    bool created = false;
    int r;

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->root_fd = -1;
    s->tmp_fd = -1;
    s->fsync = fsync;
    for (int i = 0; i < BLOB_STORE_STRIPES; i++)
        pthread_mutex_init(&s->stripes[i], NULL);
    s->root = strdup(root);
    if (!s->root) {
        r = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot open root %s: %s", root, strerror(errno));
        goto fail;
    }
    if (mkdirat(s->root_fd, BLOB_STORE_TMP_DIR, 0755) == 0)
        created = true;
    else if (errno != EEXIST) {
        r = -errno;
        snprintf(err, errlen, "cannot create %s/%s: %s", root, BLOB_STORE_TMP_DIR, strerror(errno));
        goto fail;
    }
    if (created && fsync && fsync_dir_at(s->root_fd, ".") < 0)
        log_warn("event=fsync_failed dir=%s error=\"%s\"", root, strerror(errno));
    s->tmp_fd =
        openat(s->root_fd, BLOB_STORE_TMP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s->tmp_fd < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot open %s/%s: %s", root, BLOB_STORE_TMP_DIR, strerror(errno));
        goto fail;
    }
    r = store_clean_tmp(s, ret_tmp_removed);
    if (r < 0) {
        snprintf(err, errlen, "cannot clean %s/%s: %s", root, BLOB_STORE_TMP_DIR, strerror(-r));
        goto fail;
    }
    r = store_count(s, &files, ret_tmp_removed);
    if (r < 0) {
        snprintf(err, errlen, "cannot count the files under %s: %s", root, strerror(-r));
        goto fail;
    }
    atomic_store(&s->files, files);
    *ret_files = files;
    *ret = s;
    return 0;
fail:
    blob_store_free(s);
    return r;
}

void blob_store_free(struct blob_store *s)
{
    if (!s)
        return;
    if (s->tmp_fd >= 0)
        close(s->tmp_fd);
    if (s->root_fd >= 0)
        close(s->root_fd);
    for (int i = 0; i < BLOB_STORE_STRIPES; i++)
        pthread_mutex_destroy(&s->stripes[i]);
    free(s->root);
    free(s);
}

const char *blob_store_root(const struct blob_store *s)
{
    return s->root;
}

int blob_store_root_fd(const struct blob_store *s)
{
    return s->root_fd;
}

uint64_t blob_store_files(const struct blob_store *s)
{
    return atomic_load(&((struct blob_store *) s)->files);
}

int blob_store_open_read(struct blob_store *s, const char *name, size_t len, int *ret_fd,
                         struct stat *ret_st)
{
    char rel[BLOB_REL_MAX];
    int fd, r;

    r = blob_rel_path(name, len, rel);
    if (r < 0)
        return r;
    fd = openat(s->root_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR || errno == ELOOP ? -ENOENT : -errno;
    if (fstat(fd, ret_st) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    if (!S_ISREG(ret_st->st_mode)) {
        close(fd);
        return -ENOENT;
    }
    *ret_fd = fd;
    return 0;
}

/* The directory a temp file's name is relative to. */
static int tmp_dir_fd(const struct blob_store *s, const struct blob_tmp *t)
{
    return t->near ? s->root_fd : s->tmp_fd;
}

static int store_make_fanout(struct blob_store *s, const char *fanout, bool sync);

int blob_tmp_create_near(struct blob_store *s, const char *name, size_t len, unsigned flags,
                         struct blob_tmp *ret)
{
    char rel[BLOB_REL_MAX], fanout[BLOB_FANOUT_LEN];
    bool made = false;
    int r = blob_rel_path(name, len, rel);

    if (r < 0)
        return r;
    memcpy(fanout, rel, 5);
    fanout[5] = '\0';
    for (int tries = 0; tries < 16; tries++) {
        uint64_t seq = atomic_fetch_add(&s->tmp_seq, 1);
        int fd;

        ret->near = true;
        snprintf(ret->name, sizeof(ret->name), "%s/" BLOB_STORE_NEAR_PREFIX "%ld-%" PRIu64, fanout,
                 (long) getpid(), seq);
        fd = openat(s->root_fd, ret->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ret->fd = fd;
            return 0;
        }
        if (errno == ENOENT && !made) { /* the first blob of this fan-out directory */
            r = store_make_fanout(s, fanout, s->fsync && !(flags & BLOB_COMMIT_NOSYNC));
            if (r < 0)
                return r;
            made = true;
            tries--;
            continue;
        }
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

int blob_tmp_create(struct blob_store *s, struct blob_tmp *ret)
{
    for (int tries = 0; tries < 16; tries++) {
        uint64_t seq = atomic_fetch_add(&s->tmp_seq, 1);
        int fd;

        ret->near = false;
        snprintf(ret->name, sizeof(ret->name), "put-%ld-%" PRIu64, (long) getpid(), seq);
        fd = openat(s->tmp_fd, ret->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ret->fd = fd;
            return 0;
        }
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

int blob_tmp_write(struct blob_tmp *t, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(t->fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

void blob_tmp_discard(struct blob_store *s, struct blob_tmp *t)
{
    if (t->fd < 0)
        return;
    close(t->fd);
    t->fd = -1;
    if (unlinkat(tmp_dir_fd(s, t), t->name, 0) < 0 && errno != ENOENT)
        log_warn("event=tmp_unlink_failed file=%s/%s/%s error=\"%s\"", s->root,
                 t->near ? "." : BLOB_STORE_TMP_DIR, t->name, strerror(errno));
}

/* Creates ROOT/aa and ROOT/aa/bb when missing. The parent is fsync'd even when another
 * request created the directory first: its entry must be durable before our 201. */
static int store_make_fanout(struct blob_store *s, const char *fanout, bool sync)
{
    char aa[3] = {fanout[0], fanout[1], '\0'};
    int r;

    if (mkdirat(s->root_fd, aa, 0755) < 0 && errno != EEXIST)
        return -errno;
    if (sync && (r = fsync_dir_at(s->root_fd, ".")) < 0)
        return r;
    if (mkdirat(s->root_fd, fanout, 0755) < 0 && errno != EEXIST)
        return -errno;
    if (sync && (r = fsync_dir_at(s->root_fd, aa)) < 0)
        return r;
    return 0;
}

static pthread_mutex_t *store_stripe(struct blob_store *s, const char *fanout)
{
    /* Names of one leaf directory share a stripe; leaves spread over the stripes. */
    unsigned long leaf = strtoul(fanout + 3, NULL, 16);

    return &s->stripes[leaf % BLOB_STORE_STRIPES];
}

/* Renames the temp file to rel and counts it if nothing was there before. */
static int store_rename(struct blob_store *s, struct blob_tmp *t, const char *rel,
                        const char *fanout)
{
    pthread_mutex_t *lock = store_stripe(s, fanout);
    struct stat st;
    bool existed;
    int r = 0;

    pthread_mutex_lock(lock);
    existed = fstatat(s->root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (renameat(tmp_dir_fd(s, t), t->name, s->root_fd, rel) < 0) {
        r = -errno;
        goto out;
    }
    if (!existed)
        atomic_fetch_add(&s->files, 1);
out:
    pthread_mutex_unlock(lock);
    return r;
}

int blob_tmp_commit(struct blob_store *s, struct blob_tmp *t, const char *name, size_t len)
{
    return blob_tmp_commit_flags(s, t, name, len, 0);
}

int blob_store_sync(struct blob_store *s)
{
    if (s->fsync && syncfs(s->root_fd) < 0)
        return -errno;
    return 0;
}

int blob_tmp_commit_flags(struct blob_store *s, struct blob_tmp *t, const char *name, size_t len,
                          unsigned flags)
{
    char rel[BLOB_REL_MAX], fanout[BLOB_FANOUT_LEN];
    bool sync = s->fsync && !(flags & BLOB_COMMIT_NOSYNC);
    int fd = t->fd, r;

    r = blob_rel_path(name, len, rel);
    if (r < 0)
        goto fail;
    memcpy(fanout, rel, 5);
    fanout[5] = '\0';
    if (sync && fsync(fd) < 0) {
        r = -errno;
        goto fail;
    }
    if (close(fd) < 0) {
        r = -errno;
        t->fd = -1;
        unlinkat(tmp_dir_fd(s, t), t->name, 0);
        return r;
    }
    t->fd = -1;
    r = store_rename(s, t, rel, fanout);
    if (r == -ENOENT) { /* first blob of this fan-out directory */
        r = store_make_fanout(s, fanout, sync);
        if (r == 0)
            r = store_rename(s, t, rel, fanout);
    }
    if (r < 0) {
        unlinkat(tmp_dir_fd(s, t), t->name, 0);
        return r;
    }
    if (sync)
        return fsync_dir_at(s->root_fd, fanout);
    return 0;
fail:
    blob_tmp_discard(s, t);
    return r;
}

int blob_store_delete(struct blob_store *s, const char *name, size_t len)
{
    char rel[BLOB_REL_MAX], fanout[BLOB_FANOUT_LEN];
    pthread_mutex_t *lock;
    int r;

    r = blob_rel_path(name, len, rel);
    if (r < 0)
        return r;
    memcpy(fanout, rel, 5);
    fanout[5] = '\0';
    lock = store_stripe(s, fanout);
    pthread_mutex_lock(lock);
    if (unlinkat(s->root_fd, rel, 0) < 0)
        r = errno == ENOTDIR ? -ENOENT : -errno;
    else
        atomic_fetch_sub(&s->files, 1);
    pthread_mutex_unlock(lock);
    if (r == 0 && s->fsync)
        r = fsync_dir_at(s->root_fd, fanout);
    return r;
}

int blob_store_statvfs(struct blob_store *s, struct statvfs *ret)
{
    return fstatvfs(s->root_fd, ret) < 0 ? -errno : 0;
}
