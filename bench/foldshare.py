#!/usr/bin/env python3
"""Shares of functions in folded stacks (Ember's --format folded, or perf
script output folded by --perf), for bench/frames.sh.

    foldshare.py [--perf|--pprof] [--comm NAME] FILE FUNC...

(--pprof reads `go tool pprof -traces` output, whose stacks start at
runtime.main, not goexit: its "complete" figure means nothing.)

Prints the samples counted, the share of stacks complete to a thread's start
(the root frame is a known entry point and nothing is marked truncated), and
each FUNC's cumulative share (the share of samples with a frame whose name
contains it). Kernel frames are left out."""
import re
import sys

ROOTS = ("runtime.goexit", "runtime.mstart", "runtime.rt0_go", "_start", "clone", "clone3",
         "start_thread", "__libc_start_main", "__libc_start_call_main", "thread_start")


def perf_stacks(path):
    """Folds `perf script` output: (comm, [root..leaf], count)."""
    comm, frames = None, []
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, frames[::-1], 1
            comm, frames = None, []
            continue
        if not line.startswith(("\t", " ")) and comm is None:
            comm = line.split()[0]
            continue
        m = re.match(r"\s+[0-9a-f]+ (.*) \((.*)\)$", line)
        if not m:
            continue
        sym, dso = m.group(1), m.group(2)
        if "kernel.kallsyms" in dso:
            continue
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        frames.append(sym)
    if comm is not None:
        yield comm, frames[::-1], 1


def pprof_traces(path):
    """Reads `go tool pprof -traces` output: value, then frames leaf first."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
    value, frames = None, []
    for line in list(open(path, errors="replace")) + ["-----------+"]:
        if line.startswith("-----------+"):
            if value is not None:
                yield "", frames[::-1], value
            value, frames = None, []
            continue
        m = re.match(r"\s+([\d.]+)(ns|us|µs|ms|s)\s+(\S.*)$", line)
        if m and value is None:
            value = round(float(m.group(1)) * units[m.group(2)] * 1e6)  # in microseconds
            frames.append(m.group(3).replace(" (inline)", ""))
        elif value is not None and line.strip():
            frames.append(line.strip().replace(" (inline)", ""))


def ember_stacks(path):
    for line in open(path, errors="replace"):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        parts = stack.split(";")
        frames = [f for f in parts[1:] if not f.endswith("_[k]")]
        yield parts[0], frames, int(count)


def main():
    args = sys.argv[1:]
    perf, pprof = "--perf" in args, "--pprof" in args
    args = [a for a in args if a not in ("--perf", "--pprof")]
    comm = None
    if args[0] == "--comm":
        comm, args = args[1], args[2:]
    path, funcs = args[0], args[1:]
    total = complete = 0
    cum = {f: 0 for f in funcs}
    stacks = perf_stacks(path) if perf else pprof_traces(path) if pprof else ember_stacks(path)
    for c, frames, n in stacks:
        if comm and c != comm:
            continue
        total += n
        if frames and frames[0].startswith(ROOTS) and not any(f.startswith("[truncated") for f in frames):
            complete += n
        for f in funcs:
            if any(f in fr for fr in frames):
                cum[f] += n
    print(f"{path}: {total} samples, complete {100 * complete / max(total, 1):.1f}%", end="")
    for f in funcs:
        print(f"; {f} {100 * cum[f] / max(total, 1):.1f}%", end="")
    print()


main()
