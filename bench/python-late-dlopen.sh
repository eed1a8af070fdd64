#!/bin/bash
# Usage: bench/python-late-dlopen.sh EMBER_BINARY TAG (as root; issue 20).
# A fresh daemon on 127.0.0.1:7391; a first run of testdata/python/subinterp.py
# under pyenv's 3.11 (10 s, tables built), then three counted runs of 6.5 s:
# the share of their samples ending [truncated] or holding a frame in no mapping.
set -e
BIN=$1; TAG=$2; D=${TMPDIR:-/tmp}/ember-late-$TAG; rm -rf $D; mkdir -p $D
PY=${PY:-$(pyenv root 2>/dev/null || echo /root/.pyenv)/versions/3.11.7/bin/python3.11}
$BIN daemon --listen 127.0.0.1:7391 --data-dir $D --interval 5s >$D.log 2>&1 & DP=$!
until grep -q "ember daemon sampling" $D.log; do sleep 1; done; sleep 2
# Warm: the first run builds the tables of python3.11 and libpython
# (seconds on a loaded host); only the runs after it are counted.
$PY $(dirname "$0")/../testdata/python/subinterp.py & P=$!; sleep 10; kill $P; wait $P 2>/dev/null || true; sleep 25
start=$(date -u +%s); pids=""
for i in 1 2 3; do
  $PY $(dirname "$0")/../testdata/python/subinterp.py & P=$!; pids="$pids|$P"; sleep 6.5; kill $P; wait $P 2>/dev/null || true
done
sleep 12
q=$(python3 -c "import urllib.parse,sys;print(urllib.parse.quote('{pid=~\"${pids#|}\"}'))")
curl -sf -o $D.pb.gz "http://127.0.0.1:7391/api/v1/profile?from=$start&query=$q"
kill $DP; wait $DP 2>/dev/null || true
go tool pprof -traces $D.pb.gz 2>/dev/null | awk -v tag=$TAG -v l="$(cut -d' ' -f1-3 /proc/loadavg)" '
function flush(){ if (v>0){ tot+=v; if (tr) t+=v; if (nm) n+=v; if (insub) s+=v; if (insub&&tr) st+=v } v=0; tr=0; nm=0; insub=0 }
/^-----/ {flush(); next}
/^ +[0-9.]+m?s +/ { flush(); x=$1; if (x ~ /ms$/) {sub("ms","",x); v=x/1000} else {sub("s","",x); v=x+0} }
/\[truncated\]/ {tr=1} /address in no mapping/ {nm=1} /in_sub/ {insub=1}
END{flush(); printf "%s %s: %.2f s sampled, truncated %.2f s (%.1f%%), frame in no mapping %.2f s (%.1f%%), in_sub %.2f s of which truncated %.1f%%; load %s\n", tag, strftime("%H:%M:%S",systime(),1), tot, t, 100*t/tot, n, 100*n/tot, s, 100*st/(s>0?s:1), l}'
