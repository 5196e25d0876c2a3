/* common/addr.c — listen addresses: parses "HOST:PORT" with a numeric IPv4/IPv6 host and
 * formats socket addresses back into that form. Never resolves names. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Longest text addr_parse accepts: "[" IPv6 "]:" 5-digit port. */
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN + 8)

/* Parses a decimal port 0..65535: 1-5 digits, nothing else. */
static int addr_parse_port(const char *s, in_port_t *ret)
{
    unsigned v = 0;
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 5)
            return -EINVAL;
        v = v * 10 + (unsigned) (s[n] - '0');
    }
    if (n == 0 || v > 65535)
        return -EINVAL;
    *ret = htons((in_port_t) v);
    return 0;
}

int addr_parse(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
    char host[ADDR_TEXT_MAX + 1];
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
    const char *colon, *port;
    size_t len, hostlen;
    socklen_t sl;
    in_port_t p;

    if (s == NULL)
        return -EINVAL;
    len = strnlen(s, ADDR_TEXT_MAX + 1);
    if (len > ADDR_TEXT_MAX)
        return -EINVAL;
    memset(&ss, 0, sizeof(ss));

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (close == NULL || close[1] != ':')
            return -EINVAL;
        hostlen = (size_t) (close - s - 1);
        if (hostlen == 0)
            return -EINVAL;
        memcpy(host, s + 1, hostlen);
        host[hostlen] = '\0';
        port = close + 2;
        if (addr_parse_port(port, &p) < 0 || inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return -EINVAL;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = p;
        sl = sizeof(*sin6);
    } else {
        colon = strchr(s, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return -EINVAL; /* no port, or an IPv6 address without brackets */
        hostlen = (size_t) (colon - s);
        memcpy(host, s, hostlen);
        host[hostlen] = '\0';
        if (addr_parse_port(colon + 1, &p) < 0)
            return -EINVAL;
        if (hostlen == 0)
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -EINVAL;
        sin->sin_family = AF_INET;
        sin->sin_port = p;
        sl = sizeof(*sin);
    }
    memcpy(ret, &ss, sizeof(ss));
    *ret_len = sl;
    return 0;
}

int addr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    int r;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) sa;

        if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) == NULL)
            return -errno;
        port = ntohs(sin->sin_port);
        r = snprintf(out, outlen, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) sa;

        if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) == NULL)
            return -errno;
        port = ntohs(sin6->sin6_port);
        r = snprintf(out, outlen, "[%s]:%u", host, port);
    } else {
        return -EAFNOSUPPORT;
    }
    if (r < 0 || (size_t) r >= outlen)
        return -ENOSPC;
    return 0;
}
