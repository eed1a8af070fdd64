# Sources the scope finder must name as CPython does (scopes_test.go
# checks it against each interpreter's own qualified names).
import functools


def deco(*args, **kwargs):
    return lambda f: f


"""A docstring that says
def not_a_function():
    class NotAClass:
"""
NOT_DEF = 'def fake(): pass'  # def commented_out(): pass
RAW = r'class \' Fake:'
BYTES = b"def \" bytes_fake"
FMT = f"{NOT_DEF!r} def f_fake"


class Worker:
    def run(self):
        return [x * 2 for x in range(3)]

    @staticmethod
    @deco(
        lambda: "decorator's lambda",
    )
    def decorated(a,
                  b=lambda: 1,
                  *,
                  c: "def ann(): pass" = None) -> int:
        return a

    class Inner:
        def run(self):
            return {k: v for k, v in
                    {}.items()}

        class Deeper:
            async def run(self):
                await something()

    key = sorted([3, 1], key=lambda v:
                 -v)
    gen = list(
        y for y in range(2))
    sets = {z for z in range(2)}

    def method_with_lambda(self, items):
        return sorted(items, key=lambda i: (i, lambda: i))


class Other:
    def run(self):
        def inner():
            def innermost():
                return 1
            return innermost
        return inner

    def \
            continued(self):
        pass


# Tabs: one is eight columns, and may mix with spaces after it.
class Tabbed:
	def run(self):
	    return [t for t in ()]
	class InTab:
		def run(self): pass


async def coroutine():
    async def nested_coroutine():
        return [w async for w in agen()]
    return nested_coroutine


def uses_global():
    global made_global

    def made_global():
        pass

    class LocalClass:
        def m(self):
            return (q
                    for q in [lambda: [r for r in (lambda: 1)()]])

    return LocalClass


def one_liner(): return lambda: 0
class OneLineClass: attr = [i for i in range(2)]


@functools.lru_cache(maxsize=None)
# a comment between a decorator and its def
def cached(n):
    return n


x = [lambda: 1, lambda: 2]
curried = lambda a, b: lambda c, d: (a, b, c, d)
y = [a for a in [b for b in range(3)] if a]
z = {k: (lambda: k) for k in range(2)}


def defaults(f=lambda: [c for c in "ab"], g={d: 1 for d in "cd"}):
    return f, g


def string_continuation():
    s = "a \
def fake_in_continued_string(): pass"
    return s


def dangling(
    a,
    b,
):
    return [
        lambda: a
        for a in range(b)
    ]
