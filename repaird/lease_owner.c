/* repaird/lease_owner.c — lease holder ids built from /proc (pid, start time, pid namespace),
 * so that a restarted repaird reclaims the leases of a dead one on the same host at once. */
#include "lease_owner.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Start time (clock ticks after boot) of pid from /proc/PID/stat, field 22; -ESRCH for a zombie
 * (killed, not yet reaped: as dead as a missing pid). */
static int lease_proc_starttime(long pid, unsigned long long *ret)
{
    char path[64], line[1024], *p;
    FILE *f;
    size_t n;
    int field;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "re");
    if (!f)
        return -errno;
    n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    p = strrchr(line, ')'); /* comm may hold spaces and parentheses */
    if (!p)
        return -EINVAL;
    p++;
    if (p[0] == ' ' && (p[1] == 'Z' || p[1] == 'X'))
        return -ESRCH;
    for (field = 2; field < 21 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p)
        return -EINVAL;
    *ret = strtoull(p + 1, NULL, 10);
    return 0;
}

static int lease_pidns(unsigned long long *ret)
{
    char target[64];
    ssize_t n = readlink("/proc/self/ns/pid", target, sizeof(target) - 1);
    const char *p;

    if (n < 0)
        return -errno;
    target[n] = '\0';
    p = strchr(target, '[');
    if (!p)
        return -EINVAL;
    *ret = strtoull(p + 1, NULL, 10);
    return 0;
}

int lease_owner_self(char *out, size_t outlen)
{
    char host[65] = "";
    unsigned long long start = 0, ns = 0;
    int r;

    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
        snprintf(host, sizeof(host), "localhost");
    for (char *c = host; *c; c++) {
        if (*c == ':' || *c == ' ')
            *c = '_';
    }
    r = lease_proc_starttime((long) getpid(), &start);
    if (r < 0)
        return r;
    r = lease_pidns(&ns);
    if (r < 0)
        return r;
    r = snprintf(out, outlen, "%s:%ld:%llu:%llu", host, (long) getpid(), start, ns);
    return r > 0 && (size_t) r < outlen ? 0 : -ENOSPC;
}

int lease_owner_host_prefix(const char *owner, char *out, size_t outlen)
{
    const char *c = strchr(owner, ':');
    size_t n;

    if (!c)
        return -EINVAL;
    n = (size_t) (c - owner) + 1;
    if (n >= outlen)
        return -EINVAL;
    memcpy(out, owner, n);
    out[n] = '\0';
    return 0;
}

struct lease_owner_parts {
    char host[66];
    long pid;
    unsigned long long start, ns;
};

static int lease_owner_parse(const char *s, struct lease_owner_parts *ret)
{
    const char *c = strchr(s, ':');
    size_t n;
    char tail[96];

    if (!c || (n = (size_t) (c - s)) == 0 || n >= sizeof(ret->host) ||
        strlen(c + 1) >= sizeof(tail))
        return -EINVAL;
    memcpy(ret->host, s, n);
    ret->host[n] = '\0';
    memcpy(tail, c + 1, strlen(c + 1) + 1);
    if (sscanf(tail, "%ld:%llu:%llu", &ret->pid, &ret->start, &ret->ns) != 3 || ret->pid <= 0)
        return -EINVAL;
    return 0;
}

bool lease_owner_is_dead(const char *self, const char *other)
{
    struct lease_owner_parts me, them;
    unsigned long long start;
    int r;

    if (!other || strcmp(self, other) == 0)
        return false;
    if (lease_owner_parse(self, &me) < 0 || lease_owner_parse(other, &them) < 0)
        return false;
    if (strcmp(me.host, them.host) != 0 || me.ns != them.ns)
        return false;
    r = lease_proc_starttime(them.pid, &start);
    if (r == -ENOENT || r == -ESRCH)
        return true;
    if (r < 0)
        return false;
    return start != them.start;
}
