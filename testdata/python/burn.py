# Burns CPU in three functions, 50/30/20 of the process's CPU time by each
# thread's own clock, whatever the machine's load: alpha in pure Python,
# beta through a C function (sorted) that calls back into Python, gamma on
# a second thread. Runs until killed. The tests find lines by the marks.
import threading
import time


def alpha(budget):
    end = time.thread_time() + budget
    while time.thread_time() < end:
        x = 0
        for i in range(2000):
            x += i * i  # mark: alpha-loop


def key(v):
    return -v  # mark: key


def beta(budget):
    data = list(range(300))
    end = time.thread_time() + budget
    while time.thread_time() < end:
        sorted(data, key=key)  # mark: beta-sorted


def gamma(budget):
    end = time.thread_time() + budget
    while time.thread_time() < end:
        y = 1
        for i in range(2000):
            y = (y * 31 + i) % 1000003  # mark: gamma-loop


def gamma_thread(go, done):
    while True:
        go.wait()
        go.clear()
        gamma(0.02)  # mark: gamma-call
        done.set()


def main():
    go, done = threading.Event(), threading.Event()
    threading.Thread(target=gamma_thread, args=(go, done), daemon=True).start()
    while True:
        alpha(0.05)  # mark: alpha-call
        beta(0.03)  # mark: beta-call
        go.set()
        done.wait()
        done.clear()


main()  # mark: main-call
