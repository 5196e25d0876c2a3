/* repaird/lease_owner.h — who holds a job lease: "HOST:PID:STARTTIME:PIDNS" of a repaird
 * process, and whether such a holder on this machine is known to be dead. */
#ifndef REPAIRD_LEASE_OWNER_H
#define REPAIRD_LEASE_OWNER_H

#include <stdbool.h>
#include <stddef.h>

#define LEASE_OWNER_MAX 128

/* Writes this process's holder id into out (LEASE_OWNER_MAX bytes). Returns 0 or -errno. */
int lease_owner_self(char *out, size_t outlen);

/* The "HOST:" prefix of a holder id (including the colon) into out. Returns 0 or -EINVAL. */
int lease_owner_host_prefix(const char *owner, char *out, size_t outlen);

/* True when other names a process of this host and PID namespace that no longer runs (its pid
 * is gone or now belongs to a process started at another time). False when it is alive, when
 * it is this process, or when it belongs to another host or namespace (then only the lease
 * expiry can tell). */
bool lease_owner_is_dead(const char *self, const char *other);

#endif
