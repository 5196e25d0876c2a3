/* common/digest.h — streaming MD5 (ETags, Content-MD5) through OpenSSL EVP. */
#ifndef STF_DIGEST_H
#define STF_DIGEST_H

#include <stddef.h>
#include <stdint.h>

struct md5_ctx; /* opaque; owns an EVP_MD_CTX */

/* Returns a new context or NULL on allocation failure; free with md5_free (NULL-safe). */
struct md5_ctx *md5_new(void);
void md5_free(struct md5_ctx *c);
void md5_update(struct md5_ctx *c, const void *data, size_t len);
/* Writes the 16-byte digest; the context may be reused after md5_reset. */
void md5_final(struct md5_ctx *c, uint8_t out[16]);
void md5_reset(struct md5_ctx *c);

/* Lower-case hex of n bytes into out (2n+1 bytes with the NUL). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes base64 Content-MD5 into 16 bytes. Returns 0 or -EINVAL. */
int md5_from_base64(const char *b64, uint8_t out[16]);

#endif
