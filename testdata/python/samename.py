# Burns CPU in two methods of the same name, A.work and B.work, 60/40 of
# the process's CPU time by its own clock, whatever the machine's load.
# Before 3.11 their code objects are both named "work": the profile must
# still tell them apart. Runs until killed.
import time


class A:
    def work(self, budget):
        end = time.thread_time() + budget
        while time.thread_time() < end:
            x = 0
            for i in range(2000):
                x += i * i


class B:
    def work(self, budget):
        end = time.thread_time() + budget
        while time.thread_time() < end:
            y = 1
            for i in range(2000):
                y = (y * 31 + i) % 1000003


def main():
    a, b = A(), B()
    while True:
        a.work(0.03)
        b.work(0.02)


main()
