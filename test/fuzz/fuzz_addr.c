/* test/fuzz/fuzz_addr.c — listen addresses (common/addr.c): only numeric HOST:PORT is accepted,
 * the port and host are what the text says, and format/parse round-trip exactly. */
#include "fuzz.h"

#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>

#define ADDR_INPUT_MAX 128
#define ADDR_OUT_MAX 64

static bool only_chars(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0' || !strchr(set, s[i]))
            return false;
    }
    return true;
}

/* The host and port as the text spells them, split independently of addr.c. */
static void check_text(const char *s, const struct sockaddr_storage *ss)
{
    const char *colon = strrchr(s, ':'), *host = s;
    size_t hostlen;
    unsigned port = 0;
    char hbuf[ADDR_INPUT_MAX];
    unsigned char want[16] = {0};

    FUZZ_ASSERT(colon != NULL, "'%s' accepted without a port", s);
    FUZZ_ASSERT(strlen(colon + 1) >= 1 && strlen(colon + 1) <= 5 &&
                    only_chars(colon + 1, strlen(colon + 1), "0123456789"),
                "'%s': port text", s);
    for (const char *p = colon + 1; *p; p++)
        port = port * 10 + (unsigned) (*p - '0');
    FUZZ_ASSERT(port <= 65535, "'%s': port %u", s, port);
    hostlen = (size_t) (colon - s);
    if (s[0] == '[') {
        FUZZ_ASSERT(hostlen >= 3 && s[hostlen - 1] == ']', "'%s': brackets", s);
        host = s + 1;
        hostlen -= 2;
        /* never a name to resolve: hex digits, ':' and (embedded IPv4) '.' only */
        FUZZ_ASSERT(only_chars(host, hostlen, "0123456789abcdefABCDEF:."), "'%s': host", s);
        FUZZ_ASSERT(ss->ss_family == AF_INET6, "'%s': family %d", s, ss->ss_family);
    } else {
        FUZZ_ASSERT(only_chars(host, hostlen, "0123456789."), "'%s': host", s);
        FUZZ_ASSERT(ss->ss_family == AF_INET, "'%s': family %d", s, ss->ss_family);
    }
    memcpy(hbuf, host, hostlen);
    hbuf[hostlen] = '\0';
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) ss;

        FUZZ_ASSERT(ntohs(sin6->sin6_port) == port, "'%s': port %u", s, ntohs(sin6->sin6_port));
        FUZZ_ASSERT(inet_pton(AF_INET6, hbuf, want) == 1 && memcmp(want, &sin6->sin6_addr, 16) == 0,
                    "'%s': address", s);
    } else {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) ss;

        FUZZ_ASSERT(ntohs(sin->sin_port) == port, "'%s': port %u", s, ntohs(sin->sin_port));
        if (hostlen == 0)
            FUZZ_ASSERT(sin->sin_addr.s_addr == htonl(INADDR_ANY), "'%s': empty host", s);
        else
            FUZZ_ASSERT(inet_pton(AF_INET, hbuf, want) == 1 && memcmp(want, &sin->sin_addr, 4) == 0,
                        "'%s': address", s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss, ss2;
    socklen_t sl = 0, sl2 = 0;
    char out[ADDR_OUT_MAX], out2[ADDR_OUT_MAX], *small, *s;
    size_t outlen;
    int r;

    s = fuzz_strndup(data, size, ADDR_INPUT_MAX);
    r = addr_parse(s, &ss, &sl);
    FUZZ_ASSERT(r == 0 || r == -EINVAL, "'%s': %d", s, r);
    if (r < 0)
        goto out;
    FUZZ_ASSERT((ss.ss_family == AF_INET && sl == sizeof(struct sockaddr_in)) ||
                    (ss.ss_family == AF_INET6 && sl == sizeof(struct sockaddr_in6)),
                "'%s': family %d len %u", s, ss.ss_family, (unsigned) sl);
    check_text(s, &ss);

    /* format, parse again: the same socket address; format again: the same text */
    FUZZ_ASSERT(addr_format((struct sockaddr *) &ss, out, sizeof(out)) == 0, "'%s'", s);
    FUZZ_ASSERT(addr_parse(out, &ss2, &sl2) == 0 && sl2 == sl && memcmp(&ss, &ss2, sl) == 0,
                "'%s' formats as '%s', which parses differently", s, out);
    FUZZ_ASSERT(addr_format((struct sockaddr *) &ss2, out2, sizeof(out2)) == 0 &&
                    strcmp(out, out2) == 0,
                "'%s' vs '%s'", out, out2);

    /* any output size: the whole text, or -ENOSPC, never a byte past outlen */
    outlen = size > 0 ? data[size - 1] % ADDR_OUT_MAX : 0;
    small = malloc(outlen ? outlen : 1);
    FUZZ_ASSERT(small != NULL, "malloc");
    r = addr_format((struct sockaddr *) &ss, small, outlen);
    if (strlen(out) < outlen)
        FUZZ_ASSERT(r == 0 && strcmp(small, out) == 0, "outlen %zu: %d", outlen, r);
    else
        FUZZ_ASSERT(r == -ENOSPC, "outlen %zu for '%s': %d", outlen, out, r);
    free(small);
out:
    free(s);
    return 0;
}
