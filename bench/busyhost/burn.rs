// The Rust long-lived program of bench/busyhost.sh: burn::hot_a (60%) and
// burn::hot_b (40%), CPU-MS of work every PERIOD-MS.
//
// Usage: burn-rust CPU-MS PERIOD-MS
use std::hint::black_box;
use std::time::{Duration, Instant};

#[inline(never)]
fn spin(mut x: u64, n: u32) -> u64 {
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

#[inline(never)]
fn hot_a(x: u64) -> u64 {
    black_box(spin(black_box(x), 300_000))
}

#[inline(never)]
fn hot_b(x: u64) -> u64 {
    black_box(spin(black_box(x), 200_000))
}

fn cpu_ms() -> f64 {
    let mut t = libc_timespec { tv_sec: 0, tv_nsec: 0 };
    // CLOCK_PROCESS_CPUTIME_ID is 2 on Linux; no libc crate needed.
    unsafe { clock_gettime(2, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

#[repr(C)]
struct libc_timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clk: i32, t: *mut libc_timespec) -> i32;
}

fn main() {
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let ms = args.first().copied().unwrap_or(5.0);
    let period = Duration::from_micros((args.get(1).copied().unwrap_or(100.0) * 1000.0) as u64);
    let mut x = 88172645463325252u64;
    let mut next = Instant::now();
    loop {
        let end = cpu_ms() + ms;
        while cpu_ms() < end {
            x = hot_a(x);
            x = hot_b(x);
        }
        next += period;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}
