/* clusterctl/output.h — what every clusterctl command prints: aligned human tables, JSON written
 * into a struct buf, a reader for flat JSON objects (storaged's /_stats), human byte sizes. */
#ifndef STF_CLUSTERCTL_OUTPUT_H
#define STF_CLUSTERCTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct buf;

/* ---- tables ----
 * Columns are separated by two spaces and padded to their widest cell; the last column is not
 * padded, so no line ends in spaces. Cells are copied; a NULL cell prints as "-". */
enum out_align { OUT_LEFT = 0, OUT_RIGHT };

struct out_table;

/* Returns a table with ncols columns (1..32), or NULL on ENOMEM/EINVAL. align may be NULL
 * (all left). The caller owns it: out_table_free() (NULL-safe). */
struct out_table *out_table_new(size_t ncols, const char *const *headers,
                                const enum out_align *align);
void out_table_free(struct out_table *t);
/* Appends one row of ncols cells. Returns 0 or -ENOMEM. */
int out_table_add(struct out_table *t, const char *const *cells);
size_t out_table_rows(const struct out_table *t);
/* Prints the header line and the rows. Returns 0 or -EIO. */
int out_table_print(const struct out_table *t, FILE *f);

/* ---- JSON writer ----
 * Writes compact JSON into a struct buf. Inside an object every value takes a key; inside an
 * array (or at the top) key must be NULL. Errors are sticky: out_json_end() reports the first. */
#define OUT_JSON_MAX_DEPTH 16

struct out_json {
    struct buf *b;
    unsigned depth;
    bool need_comma[OUT_JSON_MAX_DEPTH + 1];
    int err;
};

void out_json_begin(struct out_json *j, struct buf *b);
void out_json_obj_open(struct out_json *j, const char *key);
void out_json_obj_close(struct out_json *j);
void out_json_arr_open(struct out_json *j, const char *key);
void out_json_arr_close(struct out_json *j);
void out_json_str(struct out_json *j, const char *key, const char *s); /* NULL -> null */
void out_json_int(struct out_json *j, const char *key, int64_t v);
void out_json_uint(struct out_json *j, const char *key, uint64_t v);
void out_json_bool(struct out_json *j, const char *key, bool v);
void out_json_null(struct out_json *j, const char *key);
/* Returns 0, or the first error (-ENOMEM, -E2BIG, -EINVAL for unbalanced nesting). */
int out_json_end(struct out_json *j);

/* ---- JSON reader ----
 * Finds key at the top level of the JSON object in json[0..len) and reads its value as a
 * non-negative integer. Nested values and strings are skipped correctly. Returns 0,
 * -ENOENT (no such key), -EINVAL (not an object / not an unsigned integer / malformed). */
int out_json_get_u64(const char *json, size_t len, const char *key, uint64_t *ret);

/* ---- sizes ----
 * "0 B", "999 B", "1.5 KiB", "50.0 MiB", "3.2 TiB" (1024-based). */
void out_bytes(uint64_t n, char *out, size_t outlen);

#endif
