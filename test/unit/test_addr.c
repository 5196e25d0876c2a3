/* test/unit/test_addr.c — listen addresses: IPv4, [IPv6], empty host, ports, refusals,
 * formatting and the round trip, and a real bind() of a parsed address. */
#include "addr.h"
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <unistd.h>

/* Parses s and formats it back; returns the text in out or "(error N)". */
static const char *roundtrip(const char *s, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int r;

    r = addr_parse(s, &ss, &sl);
    if (r == 0)
        r = addr_format((struct sockaddr *) &ss, out, outlen);
    if (r < 0)
        snprintf(out, outlen, "(error %d)", r);
    return out;
}

static void check_refused(const char *s)
{
    struct sockaddr_storage ss;
    socklen_t sl = 12345;

    ss.ss_family = AF_UNIX;
    CHECK(addr_parse(s, &ss, &sl) == -EINVAL && sl == 12345 && ss.ss_family == AF_UNIX,
          "refused, output untouched: '%s'", s);
}

int main(void)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
    struct sockaddr_in bound;
    socklen_t sl, blen = sizeof(bound);
    char out[64];
    int fd;

    CHECK(addr_parse("127.0.0.1:9001", &ss, &sl) == 0, "ipv4 parses");
    CHECK(ss.ss_family == AF_INET && sl == sizeof(struct sockaddr_in), "ipv4 family and length");
    CHECK(ntohs(sin->sin_port) == 9001 && ntohl(sin->sin_addr.s_addr) == 0x7f000001,
          "ipv4 address and port");

    CHECK(addr_parse(":8080", &ss, &sl) == 0 && ss.ss_family == AF_INET &&
              sin->sin_addr.s_addr == htonl(INADDR_ANY) && ntohs(sin->sin_port) == 8080,
          "empty host is 0.0.0.0");
    CHECK(addr_parse("0.0.0.0:0", &ss, &sl) == 0 && ntohs(sin->sin_port) == 0,
          "port 0 (ephemeral) allowed");
    CHECK(addr_parse("1.2.3.4:65535", &ss, &sl) == 0 && ntohs(sin->sin_port) == 65535,
          "port 65535 allowed");

    CHECK(addr_parse("[::1]:9001", &ss, &sl) == 0, "ipv6 parses");
    CHECK(ss.ss_family == AF_INET6 && sl == sizeof(struct sockaddr_in6), "ipv6 family, length");
    CHECK(ntohs(sin6->sin6_port) == 9001 && IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr),
          "ipv6 address and port");
    CHECK(addr_parse("[::]:1", &ss, &sl) == 0 && IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr),
          "ipv6 any");

    check_refused("");
    check_refused("127.0.0.1");
    check_refused("127.0.0.1:");
    check_refused("127.0.0.1:65536");
    check_refused("127.0.0.1:99999");
    check_refused("127.0.0.1:123456");
    check_refused("127.0.0.1:-1");
    check_refused("127.0.0.1:+80");
    check_refused("127.0.0.1: 80");
    check_refused("127.0.0.1:80 ");
    check_refused("127.0.0.1:8a");
    check_refused("localhost:80");
    check_refused("256.0.0.1:80");
    check_refused("1.2.3:80");
    check_refused(" 1.2.3.4:80");
    check_refused("::1:9001");
    check_refused("[::1]9001");
    check_refused("[::1]:");
    check_refused("[]:80");
    check_refused("[::1:80");
    check_refused("[1.2.3.4]:80");
    check_refused("[::1]:80:80");
    check_refused("[fe80::1%lo]:80");
    check_refused("1.2.3.4:80:80");
    check_refused("[0000:0000:0000:0000:0000:0000:0000:0000:0000]:80");
    CHECK(addr_parse(NULL, &ss, &sl) == -EINVAL, "NULL refused");

    CHECK_STR(roundtrip("127.0.0.1:9001", out, sizeof(out)), "127.0.0.1:9001", "ipv4 round trip");
    CHECK_STR(roundtrip(":80", out, sizeof(out)), "0.0.0.0:80", "empty host formats as 0.0.0.0");
    CHECK_STR(roundtrip("[::1]:9001", out, sizeof(out)), "[::1]:9001", "ipv6 in brackets");
    CHECK_STR(roundtrip("[2001:DB8:0:0::1]:443", out, sizeof(out)), "[2001:db8::1]:443",
              "ipv6 canonical form");
    CHECK_STR(roundtrip("[::ffff:10.0.0.1]:1", out, sizeof(out)), "[::ffff:10.0.0.1]:1",
              "v4-mapped ipv6");

    addr_parse("255.255.255.255:65535", &ss, &sl);
    CHECK(addr_format((struct sockaddr *) &ss, out, 21) == -ENOSPC, "one byte short: ENOSPC");
    CHECK(addr_format((struct sockaddr *) &ss, out, 22) == 0 &&
              check_streq(out, "255.255.255.255:65535"),
          "exact size fits");
    ss.ss_family = AF_UNIX;
    CHECK(addr_format((struct sockaddr *) &ss, out, sizeof(out)) == -EAFNOSUPPORT,
          "other family refused");

    /* A parsed address is usable as is: bind to an ephemeral loopback port. */
    CHECK(addr_parse("127.0.0.1:0", &ss, &sl) == 0, "parse loopback ephemeral");
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *) &ss, sl) == 0 &&
              getsockname(fd, (struct sockaddr *) &bound, &blen) == 0 && ntohs(bound.sin_port) > 0,
          "bind() accepts the parsed address");
    CHECK(addr_format((struct sockaddr *) &bound, out, sizeof(out)) == 0 &&
              strncmp(out, "127.0.0.1:", 10) == 0,
          "bound address formats: %s", out);
    if (fd >= 0)
        close(fd);
    return check_done();
}
