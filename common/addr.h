/* common/addr.h — parses listen addresses ("127.0.0.1:9001", "[::1]:9001", ":9001"). */
#ifndef STF_ADDR_H
#define STF_ADDR_H

#include <sys/socket.h>

/* Parses HOST:PORT with a numeric IPv4/IPv6 host (empty host = 0.0.0.0; port 0 allowed =
 * ephemeral). Returns 0 and fills *ret and *ret_len, or -EINVAL. */
int addr_parse(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Formats "HOST:PORT" (IPv6 in brackets) into out. Returns 0 or -ENOSPC
 * (-EAFNOSUPPORT for a family other than AF_INET/AF_INET6). */
int addr_format(const struct sockaddr *sa, char *out, size_t outlen);

#endif
