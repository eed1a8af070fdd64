// sort-rust sorts vectors with sort_by and a closure that calls a slow
// comparison, at opt-level 2 without frame pointers: stacks run
// sort::slow_cmp <- (core::slice::sort internals) <- sort::sort_round <- sort::run <- sort::main <- std runtime <- main.
//
// Usage: sort-rust [seconds]   (default 10)
use std::hint::black_box;
use std::time::{Duration, Instant};

#[inline(never)]
fn slow_cmp(x: u64, y: u64) -> std::cmp::Ordering {
    let (mut a, mut b) = (x, y);
    for _ in 0..200 {
        a ^= a << 13;
        a ^= a >> 7;
        a ^= a << 17;
        b ^= b << 13;
        b ^= b >> 7;
        b ^= b << 17;
    }
    black_box(a ^ b);
    x.cmp(&y)
}

#[inline(never)]
fn sort_round(v: &mut Vec<u64>, mut seed: u64) {
    for x in v.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *x = seed;
    }
    v.sort_by(|a, b| slow_cmp(*a, *b));
}

#[inline(never)]
fn run(end: Instant) {
    let mut v = vec![0u64; 4096];
    let mut seed = 88172645463325252u64;
    while Instant::now() < end {
        sort_round(&mut v, seed);
        seed += 1;
    }
}

fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    run(Instant::now() + Duration::from_secs(seconds));
}
