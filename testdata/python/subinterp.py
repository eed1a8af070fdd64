# Burns CPU half in the main interpreter, half in a sub-interpreter run
# on the same thread (3.11+), by the thread's own clock. Runs until killed.
# With the argument "late", it first burns 0.3 s in the main interpreter
# alone, and only then loads the sub-interpreter module (a library
# dlopen'ed well after a profiler read the process's mappings).
import sys
import time

SUB = """
import sys
import time

# Keep this run's code: run_string compiles it anew each time and would
# free it before a profiler reads it (a separate, documented limit).
globals().setdefault("kept", []).append(sys._getframe().f_code)

def in_sub(budget):
    end = time.thread_time() + budget
    while time.thread_time() < end:
        x = 0
        for i in range(2000):
            x += i

in_sub(0.05)
"""


def in_main(budget):
    end = time.thread_time() + budget
    while time.thread_time() < end:
        x = 0
        for i in range(2000):
            x += i


if sys.argv[1:] == ["late"]:
    in_main(0.3)

try:
    import _interpreters as interpreters  # 3.13
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.11, 3.12

interp = interpreters.create()
while True:
    in_main(0.05)
    interpreters.run_string(interp, SUB)
