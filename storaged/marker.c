/* storaged/marker.c — reading, validating and creating the storage root marker
 * ROOT/.stf-storage ("stf-storage 1" and a random id), and creating the root on --init. */
#include "marker.h"

#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER_MAX 4096 /* a marker is a few dozen bytes; refuse anything large */
#define MARKER_TMP ".stf-storage.new"

static bool marker_id_valid(const char *s, size_t n)
{
    if (n != MARKER_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

/* Parses the marker text: MAGIC on the first line, then "key value" lines, one of them
 * "id <hex>". */
static int marker_parse(const char *text, size_t n, char ret_id[MARKER_ID_LEN + 1])
{
    const char *p = text, *end = text + n;
    bool first = true, have_id = false;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t ll = (size_t) ((nl ? nl : end) - p);

        if (first) {
            if (ll != strlen(MARKER_MAGIC) || memcmp(p, MARKER_MAGIC, ll) != 0)
                return -EINVAL;
            first = false;
        } else if (ll > 3 && memcmp(p, "id ", 3) == 0) {
            if (!marker_id_valid(p + 3, ll - 3))
                return -EINVAL;
            if (ret_id) {
                memcpy(ret_id, p + 3, MARKER_ID_LEN);
                ret_id[MARKER_ID_LEN] = '\0';
            }
            have_id = true;
        }
        p += ll + 1;
    }
    return !first && have_id ? 0 : -EINVAL;
}

int marker_check(int root_fd, char ret_id[MARKER_ID_LEN + 1], char *reason, size_t len)
{
    char text[MARKER_MAX];
    struct stat st;
    size_t n = 0;
    int fd, r = 0;

    fd = openat(root_fd, MARKER_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        if (r == -ENOENT)
            snprintf(reason, len,
                     "no storage marker %s (not an initialised storage root, or "
                     "the disk is not mounted); start once with --init",
                     MARKER_FILE);
        else
            snprintf(reason, len, "cannot open the storage marker %s: %s", MARKER_FILE,
                     strerror(-r));
        return r;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size >= MARKER_MAX) {
        r = -EINVAL;
        goto bad;
    }
    while (n < sizeof(text)) {
        ssize_t got = read(fd, text + n, sizeof(text) - n);

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            r = -errno;
            snprintf(reason, len, "cannot read the storage marker %s: %s", MARKER_FILE,
                     strerror(-r));
            goto out;
        }
        if (got == 0)
            break;
        n += (size_t) got;
    }
    r = marker_parse(text, n, ret_id);
bad:
    if (r == -EINVAL)
        snprintf(reason, len, "malformed storage marker %s (expected '%s' and an id line)",
                 MARKER_FILE, MARKER_MAGIC);
out:
    close(fd);
    return r;
}

/* mkdir -p, mode 0755. */
static int mkdir_parents(const char *path)
{
    char *p = strdup(path);
    int r = 0;

    if (!p)
        return -ENOMEM;
    if (p[0] == '\0') {
        free(p);
        return -EINVAL;
    }
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;

        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            r = -errno;
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return r;
}

/* Returns 1 when the marker was written, 0 when another process created it first, or -errno. */
static int marker_write(int root_fd, char *reason, size_t len)
{
    uint8_t raw[MARKER_ID_LEN / 2];
    char id[MARKER_ID_LEN + 1], text[128];
    int fd = -1, n, r = 0;

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t) sizeof(raw)) {
        r = -errno;
        snprintf(reason, len, "getrandom: %s", strerror(-r));
        return r;
    }
    hex_encode(raw, sizeof(raw), id);
    n = snprintf(text, sizeof(text), "%s\nid %s\n", MARKER_MAGIC, id);
    fd = openat(root_fd, MARKER_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = -errno;
        snprintf(reason, len, "cannot create %s: %s", MARKER_TMP, strerror(-r));
        goto out;
    }
    errno = EIO; /* a short write sets no errno */
    if (write(fd, text, (size_t) n) != n || fsync(fd) < 0) {
        r = -errno;
        snprintf(reason, len, "cannot write %s: %s", MARKER_TMP, strerror(-r));
        unlinkat(root_fd, MARKER_TMP, 0);
        goto out;
    }
    if (renameat2(root_fd, MARKER_TMP, root_fd, MARKER_FILE, RENAME_NOREPLACE) < 0) {
        r = -errno;
        unlinkat(root_fd, MARKER_TMP, 0);
        if (r == -EEXIST) /* another storaged --init won the race: use its marker */
            r = 0;
        else
            snprintf(reason, len, "cannot create %s: %s", MARKER_FILE, strerror(-r));
        goto out;
    }
    if (fsync(root_fd) < 0) {
        r = -errno;
        snprintf(reason, len, "cannot fsync the root directory: %s", strerror(-r));
        goto out;
    }
    r = 1;
out:
    if (fd >= 0)
        close(fd);
    return r;
}

int marker_init(const char *root, int *ret_created, char *reason, size_t len)
{
    int root_fd = -1, r;

    *ret_created = 0;
    r = mkdir_parents(root);
    if (r < 0) {
        snprintf(reason, len, "cannot create the root %s: %s", root, strerror(-r));
        return r;
    }
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        r = -errno;
        snprintf(reason, len, "cannot open the root %s: %s", root, strerror(-r));
        return r;
    }
    r = marker_check(root_fd, NULL, reason, len);
    if (r == -ENOENT) {
        r = marker_write(root_fd, reason, len);
        if (r >= 0) {
            *ret_created = r;
            r = marker_check(root_fd, NULL, reason, len);
        }
    }
    close(root_fd);
    return r;
}
