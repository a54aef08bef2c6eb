#!/usr/bin/env python3
"""Time from launching `catalogue demo` to `/readyz` answering 200, cold (new data folder) and
warm (same folder, 5 more starts). Usage: python3 scripts/measure-demo-startup.py [port]"""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8097
folder = tempfile.mkdtemp(prefix="catalogue-startup-")
times = []
try:
    for _ in range(6):
        started = time.perf_counter()
        proc = subprocess.Popen(["catalogue", "--data-dir", folder, "demo", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    sys.exit("the demo exited before it was ready")
                time.sleep(0.02)
        times.append(time.perf_counter() - started)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
finally:
    shutil.rmtree(folder, ignore_errors=True)
print(f"cold start (initdb, migrations, demo load): {times[0]:.2f} s")
print(f"warm starts: {', '.join(f'{t:.2f}' for t in times[1:])} s; "
      f"median {statistics.median(times[1:]):.2f} s")
