/* test/fuzz/replay.c — a main() for builds without libFuzzer: runs a fuzz target once on every
 * file given, or in the directories given, so each build replays the corpora as a unit test. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_INPUT_MAX (1 << 20) /* corpus files are small; refuse anything larger */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Runs the target on one file. Returns 0, or -errno when it cannot be read. */
static int replay_file(const char *path)
{
    struct stat st;
    uint8_t *data = NULL;
    size_t got = 0;
    FILE *f;
    int r = 0;

    f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    if (fstat(fileno(f), &st) < 0 || st.st_size > REPLAY_INPUT_MAX) {
        r = -EFBIG;
        goto out;
    }
    /* exactly sized (at least one byte for malloc), so ASan sees reads past the input */
    data = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
    if (data == NULL) {
        r = -ENOMEM;
        goto out;
    }
    got = fread(data, 1, (size_t) st.st_size, f);
    if (got != (size_t) st.st_size) {
        r = -EIO;
        goto out;
    }
    LLVMFuzzerTestOneInput(data, got);
out:
    free(data);
    fclose(f);
    return r;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Runs the target on every regular file of dir, in name order. Returns the count or -errno. */
static int replay_dir(const char *dir)
{
    char **names = NULL, path[4096];
    size_t n = 0, cap = 0;
    struct dirent *de;
    int r = 0, count = 0;
    DIR *d;

    d = opendir(dir);
    if (d == NULL)
        return -errno;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **grown = realloc(names, (cap ? cap * 2 : 64) * sizeof(*names));

            if (grown == NULL) {
                r = -ENOMEM;
                goto out;
            }
            names = grown;
            cap = cap ? cap * 2 : 64;
        }
        names[n] = strdup(de->d_name);
        if (names[n] == NULL) {
            r = -ENOMEM;
            goto out;
        }
        n++;
    }
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        r = replay_file(path);
        if (r < 0) {
            fprintf(stderr, "replay: %s: %s\n", path, strerror(-r));
            goto out;
        }
        count++;
    }
    r = count;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return r;
}

int main(int argc, char **argv)
{
    int total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int r;

        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        r = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
        if (r < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(-r));
            return 1;
        }
        total += S_ISDIR(st.st_mode) ? r : 1;
    }
    printf("replayed %d inputs\n", total);
    if (total == 0) {
        fprintf(stderr, "replay: no input found: an empty corpus tests nothing\n");
        return 1;
    }
    return 0;
}
