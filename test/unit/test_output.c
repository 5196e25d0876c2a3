/* test/unit/test_output.c — clusterctl/output.c: aligned tables, the JSON writer and the flat
 * JSON reader used on storaged's /_stats, human byte sizes. */
#include "buf.h"
#include "check.h"
#include "output.h"

#include <errno.h>
#include <stdlib.h>

static int get(const char *json, const char *key, uint64_t *v)
{
    return out_json_get_u64(json, strlen(json), key, v);
}

static void test_reader(void)
{
    const char *stats = "{\"bytes_total\":270553174016, \"bytes_used\" : 23385079808,\n"
                        " \"bytes_free\":79360200704,\"files\":0}";
    const char *tricky = "{\"a\":\"x\\\"files\\\":1\",\"n\":{\"files\":2,\"l\":[1,{\"f\":[]}]},"
                         "\"t\":true,\"z\":null,\"files\":3}";
    uint64_t v = 99;

    CHECK(get(stats, "bytes_used", &v) == 0 && v == 23385079808ull, "reads a value");
    CHECK(get(stats, "files", &v) == 0 && v == 0, "reads the last value");
    CHECK(get(stats, "nope", &v) == -ENOENT, "missing key: ENOENT");
    CHECK(get(tricky, "files", &v) == 0 && v == 3,
          "skips strings with escaped quotes and nested values");
    CHECK(get("{\"files\":-1}", "files", &v) == -EINVAL, "negative refused");
    CHECK(get("{\"files\":1.5}", "files", &v) == -EINVAL, "fraction refused");
    CHECK(get("{\"files\":\"3\"}", "files", &v) == -EINVAL, "string refused");
    CHECK(get("{\"files\":99999999999999999999}", "files", &v) == -EINVAL, "overflow refused");
    CHECK(get("[1,2]", "files", &v) == -EINVAL, "not an object");
    CHECK(get("{\"a\":", "files", &v) == -EINVAL, "truncated");
    CHECK(get("{\"a\":\"unterminated", "files", &v) == -EINVAL, "unterminated string");
    CHECK(get("{}", "files", &v) == -ENOENT, "empty object");
    CHECK(get("", "files", &v) == -EINVAL, "empty input");
    CHECK(out_json_get_u64("{\"files\":7}xxx", 11, "files", &v) == 0 && v == 7,
          "bounded by len, not NUL");
}

static void test_writer(void)
{
    struct out_json j;
    struct buf b;

    buf_init(&b, 4096);
    out_json_begin(&j, &b);
    out_json_obj_open(&j, NULL);
    out_json_str(&j, "s", "a\"b");
    out_json_str(&j, "n", NULL);
    out_json_int(&j, "i", -5);
    out_json_uint(&j, "u", 18446744073709551615ull);
    out_json_bool(&j, "t", true);
    out_json_arr_open(&j, "a");
    out_json_int(&j, NULL, 1);
    out_json_obj_open(&j, NULL);
    out_json_obj_close(&j);
    out_json_null(&j, NULL);
    out_json_arr_close(&j);
    out_json_obj_close(&j);
    CHECK(out_json_end(&j) == 0, "balanced document");
    CHECK_STR(b.ptr,
              "{\"s\":\"a\\\"b\",\"n\":null,\"i\":-5,\"u\":18446744073709551615,\"t\":true,"
              "\"a\":[1,{},null]}",
              "compact JSON");
    buf_reset(&b);
    out_json_begin(&j, &b);
    out_json_obj_open(&j, NULL);
    CHECK(out_json_end(&j) == -EINVAL, "unbalanced document is an error");
    buf_release(&b);

    buf_init(&b, 8);
    out_json_begin(&j, &b);
    out_json_arr_open(&j, NULL);
    out_json_str(&j, NULL, "longer than eight");
    out_json_arr_close(&j);
    CHECK(out_json_end(&j) == -E2BIG, "buffer bound reported");
    buf_release(&b);
}

static void test_table(void)
{
    static const char *const head[] = {"NAME", "N", "NOTE"};
    static const enum out_align align[] = {OUT_LEFT, OUT_RIGHT, OUT_LEFT};
    struct out_table *t = out_table_new(3, head, align);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    CHECK(t && f, "table and stream");
    if (!t || !f)
        return;
    CHECK(out_table_add(t, (const char *[]){"alpha", "1", "x"}) == 0, "row");
    CHECK(out_table_add(t, (const char *[]){"b\xc3\xa9", "1234", NULL}) == 0, "row with NULL");
    CHECK(out_table_rows(t) == 2, "two rows");
    CHECK(out_table_print(t, f) == 0, "print");
    fclose(f);
    CHECK_STR(text,
              "NAME      N  NOTE\n"
              "alpha     1  x\n"
              "b\xc3\xa9     1234  -\n",
              "aligned, right-aligned numbers, UTF-8 width, no trailing spaces");
    free(text);
    out_table_free(t);
    out_table_free(NULL);
    CHECK(out_table_new(0, head, NULL) == NULL, "zero columns refused");
}

static void test_bytes(void)
{
    char s[32];

    out_bytes(0, s, sizeof(s));
    CHECK_STR(s, "0 B", "0");
    out_bytes(1023, s, sizeof(s));
    CHECK_STR(s, "1023 B", "1023");
    out_bytes(1536, s, sizeof(s));
    CHECK_STR(s, "1.5 KiB", "1.5 KiB");
    out_bytes(52428800, s, sizeof(s));
    CHECK_STR(s, "50.0 MiB", "50 MiB");
    out_bytes(UINT64_MAX, s, sizeof(s));
    CHECK_STR(s, "16.0 EiB", "max");
}

int main(void)
{
    test_reader();
    test_writer();
    test_table();
    test_bytes();
    return check_done();
}
