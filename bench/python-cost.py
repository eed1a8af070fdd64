#!/usr/bin/env python3
"""Cost of walking CPython's frames (issue 20), side by side with it off.

    sudo bench/python-cost.py [--ember ./ember] [--python PATH] [--seconds 20]
                              [--rounds 3] [--hz 99]

Runs testdata/python/burn.py (50/30/20% of its CPU in three functions, two
threads) and, in alternating rounds, `ember record -p PID --python=true`
and `--python=false` on it. For each run it prints the sampling program's
BPF time (bpftool's run_time_ns with kernel.bpf_stats_enabled=1, read just
before the run ends) per sample of the process, and ember's own CPU time
(user + system, from wait4) per second and per sample, so the added cost
per Python sample is the difference of the two rows. The load average is
printed with each run: other work on the host makes figures move.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prog_stats(pid):
    """run_time_ns and run_cnt of the perf-event program `sample` of pid."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    for p in json.loads(out or "[]"):
        if p.get("name") != "sample":
            continue
        if any(o.get("pid") == pid for o in p.get("pids", [])):
            return p.get("run_time_ns", 0), p.get("run_cnt", 0)
    return None


def one_run(ember, pypid, on, seconds, hz):
    cmd = [ember, "record", "-p", str(pypid), f"--python={'true' if on else 'false'}", "-F", str(hz),
           "--duration", f"{seconds}s", "-o", "/tmp/python-cost.pb.gz"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    last = None
    while True:
        # wait4 here, not Popen's wait: its rusage is ember's alone (the
        # bpftool runs are children of this script too).
        pid, _, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        s = prog_stats(proc.pid)
        if s:
            last = s
        time.sleep(0.5)
    proc.returncode = 0
    err = proc.stderr.read()
    wall = time.monotonic() - start
    m = re.search(r"(\d+) samples", err)
    samples = int(m.group(1)) if m else 0
    return samples, last, wall, ru.ru_utime + ru.ru_stime, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ember", default=os.path.join(ROOT, "ember"))
    ap.add_argument("--python", default=(sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.11.*/bin/python3.11"))) or ["python3"])[-1])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hz", type=int, default=99)
    a = ap.parse_args()
    subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], check=True)
    py = subprocess.Popen([a.python, os.path.join(ROOT, "testdata/python/burn.py")])
    try:
        time.sleep(1)
        print(f"# {a.python}, {a.hz} Hz, {a.seconds} s a run, {a.rounds} rounds")
        print("python  samples  bpf_ns/sample  ember_cpu_ms/s  ember_cpu_us/sample  load1")
        for _ in range(a.rounds):
            for on in (True, False):
                samples, stats, wall, cpu, err = one_run(a.ember, py.pid, on, a.seconds, a.hz)
                bpf = stats[0] / samples if stats and samples else float("nan")
                load = os.getloadavg()[0]
                print(f"{'on ' if on else 'off'}     {samples:7d}  {bpf:13.0f}  {1000 * cpu / wall:14.2f}  "
                      f"{1e6 * cpu / max(samples, 1):19.0f}  {load:5.2f}", flush=True)
                if not samples:
                    print(err, file=sys.stderr)
    finally:
        py.kill()
        py.wait()


if __name__ == "__main__":
    main()
