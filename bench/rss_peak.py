#!/usr/bin/env python3
# bench/rss_peak.py — samples a process's resident set size (VmRSS) every few milliseconds
# until it is told to stop (SIGTERM/SIGINT) or the process exits; prints first, peak and last.
"""Usage: rss_peak.py PID [INTERVAL_MS]

Prints one line when stopped: "rss_first_kib=N rss_peak_kib=N rss_last_kib=N samples=N".
Run it in the background around the work to measure, then send it SIGTERM and wait for it."""
import signal
import sys
import time

stop = False


def on_signal(_sig, _frame):
    global stop
    stop = True


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    pid = int(argv[1])
    interval = (int(argv[2]) if len(argv) == 3 else 5) / 1000.0
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    first = rss_kib(pid)
    if first is None:
        print("rss_peak: no process %d" % pid, file=sys.stderr)
        return 1
    peak = last = first
    samples = 1
    while not stop:
        v = rss_kib(pid)
        if v is None:
            break
        last = v
        peak = max(peak, v)
        samples += 1
        time.sleep(interval)
    print("rss_first_kib=%d rss_peak_kib=%d rss_last_kib=%d samples=%d"
          % (first, peak, last, samples))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
