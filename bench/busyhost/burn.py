"""bench/busyhost.sh's Python program: hot_a (60%) and hot_b (40%).

Usage: burn.py CPU-MS [PERIOD-MS]; without a period it burns once and exits.
"""
import sys
import time


def spin(x, n):
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return x


def hot_a(x):
    return spin(x, 3000)


def hot_b(x):
    return spin(x, 2000)


def burn(ms, x):
    end = time.process_time() + ms / 1000
    while time.process_time() < end:
        x = hot_b(hot_a(x))
    return x


def main():
    ms = float(sys.argv[1]) if len(sys.argv) > 1 else 200
    period = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0
    x = 1
    if period <= 0:
        burn(ms, x)
        return
    nxt = time.monotonic()
    while True:
        x = burn(ms, x)
        nxt += period
        time.sleep(max(0, nxt - time.monotonic()))


main()
