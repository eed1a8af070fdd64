// bench/busyhost.sh's Node program: hotA (60%) and hotB (40%).
// Usage: node burn.js CPU-MS [PERIOD-MS]; without a period it burns once and exits.
'use strict';

function spin(x, n) {
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  return x;
}

function hotA(x) { return spin(x, 300000); }
function hotB(x) { return spin(x, 200000); }

function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

let state = 2463534242;
function burn(ms) {
  const end = cpuMs() + ms;
  while (cpuMs() < end) state = hotB(hotA(state));
}

const ms = Number(process.argv[2] || 200);
const period = Number(process.argv[3] || 0);
if (period <= 0) {
  burn(ms);
} else {
  let next = Date.now();
  const tick = () => {
    burn(ms);
    next += period;
    setTimeout(tick, Math.max(0, next - Date.now()));
  };
  tick();
}
