/* repaird/stopflag.h — the process-wide "shut down" request (SIGTERM/SIGINT) that every repaird
 * thread polls, and sleeps that end early when it is raised. */
#ifndef REPAIRD_STOPFLAG_H
#define REPAIRD_STOPFLAG_H

#include <stdbool.h>
#include <stdint.h>

/* Raises the flag and wakes every stopflag_sleep_ms(). Safe from any thread. */
void stopflag_raise(void);

/* True once stopflag_raise() was called. */
bool stopflag_raised(void);

/* Sleeps ms milliseconds, or less when the flag is raised. Returns true if it was raised. */
bool stopflag_sleep_ms(uint64_t ms);

#endif
