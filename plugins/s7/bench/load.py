#!/usr/bin/env python3
"""S7 load for benches/full-load (`--s7-clients N`): N python-snap7 2.x clients (the Snap7
C library, which releases the GIL while it waits), each on its own thread with its own
connection, in a closed loop for SECONDS: reads of DB1 (20 bytes), MK (20 bytes), PE and
PA (2 bytes each) in turn, and a share of writes of DB1.DBW10 (%MW5 of the bench's
s7comm.json; the demo program leaves it alone). Prints one JSON line: replies, errors,
seconds, and latency percentiles in microseconds (all, reads, writes).

    load.py --port P --clients N --seconds S [--write-percent W]
"""
import argparse
import json
import math
import threading
import time

import snap7

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--clients", type=int, default=10)
ap.add_argument("--seconds", type=float, required=True)
ap.add_argument("--write-percent", type=int, default=10)
args = ap.parse_args()


class Worker(threading.Thread):
    def __init__(self, n):
        super().__init__(daemon=True)
        self.n = n
        self.reads, self.writes = [], []
        self.errors = 0
        self.first_error = None

    def run(self):
        c = snap7.client.Client()
        try:
            c.connect("127.0.0.1", 0, 2, args.port)
        except Exception as e:  # counted, reported, this client stops
            self.errors += 1
            self.first_error = f"connect: {e}"
            return
        reads = (lambda: c.db_read(1, 0, 20), lambda: c.mb_read(0, 20), lambda: c.eb_read(0, 2), lambda: c.ab_read(0, 2))
        end = time.monotonic() + args.seconds
        i = self.n  # clients start at different places in the mix
        while True:
            start = time.monotonic()
            if start >= end:
                break
            i += 1
            write = (i * args.write_percent) // 100 != ((i - 1) * args.write_percent) // 100
            try:
                if write:
                    c.db_write(1, 10, bytearray((i & 0xFFFF).to_bytes(2, "big")))
                else:
                    reads[i % len(reads)]()
            except Exception as e:
                self.errors += 1
                if self.first_error is None:
                    self.first_error = str(e)
                continue
            us = (time.monotonic() - start) * 1e6
            (self.writes if write else self.reads).append(us)
        c.disconnect()


def pct(samples, f):
    if not samples:
        return None
    s = sorted(samples)
    rank = min(len(s), max(1, math.ceil(f * len(s))))  # nearest rank
    return round(s[rank - 1], 1)


began = time.monotonic()
workers = [Worker(n) for n in range(args.clients)]
for w in workers:
    w.start()
for w in workers:
    w.join(args.seconds + 30)
seconds = time.monotonic() - began
reads = [x for w in workers for x in w.reads]
writes = [x for w in workers for x in w.writes]
every = reads + writes
errors = [w.first_error for w in workers if w.first_error]
print(json.dumps({
    "replies": len(every),
    "errors": sum(w.errors for w in workers),
    "seconds": round(seconds, 3),
    "p50_us": pct(every, 0.5), "p99_us": pct(every, 0.99),
    "read_p99_us": pct(reads, 0.99),
    "write_p50_us": pct(writes, 0.5), "write_p99_us": pct(writes, 0.99),
    "first_error": errors[0] if errors else None,
}))
