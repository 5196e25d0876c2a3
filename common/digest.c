/* common/digest.c — streaming MD5 via OpenSSL 3 EVP, hex and base64 helpers for digests. */
#include "digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct md5_ctx {
    EVP_MD_CTX *evp;
};

struct md5_ctx *md5_new(void)
{
    struct md5_ctx *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->evp = EVP_MD_CTX_new();
    if (!c->evp || !EVP_DigestInit_ex(c->evp, EVP_md5(), NULL)) {
        md5_free(c);
        return NULL;
    }
    return c;
}

void md5_free(struct md5_ctx *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->evp);
    free(c);
}

void md5_update(struct md5_ctx *c, const void *data, size_t len)
{
    EVP_DigestUpdate(c->evp, data, len);
}

void md5_final(struct md5_ctx *c, uint8_t out[16])
{
    unsigned n = 16;

    EVP_DigestFinal_ex(c->evp, out, &n);
}

void md5_reset(struct md5_ctx *c)
{
    EVP_DigestInit_ex(c->evp, EVP_md5(), NULL);
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int md5_from_base64(const char *b64, uint8_t out[16])
{
    unsigned char tmp[32];
    size_t len = strlen(b64);
    int n;

    if (len != 24 || b64[22] != '=' || b64[23] != '=')
        return -EINVAL;
    n = EVP_DecodeBlock(tmp, (const unsigned char *) b64, (int) len);
    if (n != 18) /* 24 chars decode to 18 bytes, the last two from the '==' padding */
        return -EINVAL;
    memcpy(out, tmp, 16);
    return 0;
}
