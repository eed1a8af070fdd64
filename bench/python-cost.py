#!/usr/bin/env python3
"""Cost of walking CPython's frames (issue 20), side by side with it off.

    sudo bench/python-cost.py [--ember ./ember] [--python PATH] [--seconds 30]
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
    """run_time_ns and run_cnt of the perf-event program `sample` pid holds
    (found by the program ids in its fds: bpftool here lists no pids)."""
    ids = set()
    fddir = f"/proc/{pid}/fdinfo"
    try:
        for fd in os.listdir(fddir):
            try:
                with open(os.path.join(fddir, fd)) as f:
                    m = re.search(r"^prog_id:\s*(\d+)", f.read(), re.M)
            except OSError:
                continue
            if m:
                ids.add(int(m.group(1)))
    except OSError:
        return None
    for i in ids:
        out = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(i)], capture_output=True, text=True).stdout
        p = json.loads(out or "{}")
        if p.get("name") == "sample":
            return p.get("run_time_ns", 0), p.get("run_cnt", 0)
    return None


def one_run(ember, pypid, on, seconds, hz):
    cmd = [ember, "record", "-p", str(pypid), f"--python={'true' if on else 'false'}", "-F", str(hz),
           "--duration", f"{seconds}s", "-o", "/tmp/python-cost.pb.gz",
           # Tables from the disk cache: no table building in either run.
           "--unwind-cache-dir", "/tmp/python-cost-cache"]
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
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hz", type=int, default=99)
    a = ap.parse_args()
    subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], check=True)
    py = subprocess.Popen([a.python, os.path.join(ROOT, "testdata/python/burn.py")])
    # A process that never runs: sampling it costs only the filtered runs,
    # whose cost is then taken out of the others' BPF time.
    idle = subprocess.Popen(["sleep", "100000"])
    try:
        time.sleep(1)
        print(f"# {a.python}, {a.hz} Hz, {a.seconds} s a run, {a.rounds} rounds")
        print("# bpf_us/sample: BPF time per sample of the fixture, less the runs that filtered other processes out")
        print("python  samples    runs  bpf_ns/run  bpf_us/sample  ember_cpu_ms/s  ember_cpu_us/sample  load1")
        for _ in range(a.rounds):
            _, st, _, _, _ = one_run(a.ember, idle.pid, True, a.seconds, a.hz)
            filtered = st[0] / st[1] if st and st[1] else 0
            print(f"filter        0  {st[1] if st else 0:6d}  {filtered:10.0f}", flush=True)
            for on in (True, False):
                samples, stats, wall, cpu, err = one_run(a.ember, py.pid, on, a.seconds, a.hz)
                runs = stats[1] if stats else 0
                bpf = (stats[0] - filtered * (runs - samples)) / samples if stats and samples else float("nan")
                per_run = stats[0] / runs if runs else float("nan")
                load = os.getloadavg()[0]
                print(f"{'on ' if on else 'off'}     {samples:7d}  {runs:6d}  {per_run:10.0f}  {bpf / 1000:13.1f}  {1000 * cpu / wall:14.2f}  "
                      f"{1e6 * cpu / max(samples, 1):19.0f}  {load:5.2f}", flush=True)
                if not samples:
                    print(err, file=sys.stderr)
    finally:
        idle.kill()
        py.kill()
        idle.wait()
        py.wait()


if __name__ == "__main__":
    main()
