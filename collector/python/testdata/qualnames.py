# Prints, for every code object a source file compiles to, its first line,
# co_name and the qualified name CPython gives it, as JSON lines: the
# oracle of the scope finder's tests. Before 3.11 a function's qualified
# name is the string constant loaded right after its code object (for
# MAKE_FUNCTION), and a class's the one its body stores in __qualname__;
# from 3.11 on it is co_qualname.
#   python3.X qualnames.py FILE...
import dis
import json
import sys
import types


def instructions(code):
    # EXTENDED_ARG only widens the next instruction's argument.
    return [ins for ins in dis.get_instructions(code) if ins.opname != "EXTENDED_ARG"]


def class_qualname(insts):
    for i, ins in enumerate(insts[1:], 1):
        if ins.opname == "STORE_NAME" and ins.argval == "__qualname__" and insts[i - 1].opname == "LOAD_CONST":
            return insts[i - 1].argval
    return None


def walk(code, out):
    insts = instructions(code)
    for i, ins in enumerate(insts):
        if ins.opname != "LOAD_CONST" or not isinstance(ins.argval, types.CodeType):
            continue
        child = ins.argval
        qual = getattr(child, "co_qualname", None)
        if qual is None:
            qual = class_qualname(instructions(child))
        if qual is None and i + 1 < len(insts):
            nxt = insts[i + 1]
            if nxt.opname == "LOAD_CONST" and isinstance(nxt.argval, str):
                qual = nxt.argval
        out.append({"line": child.co_firstlineno, "name": child.co_name, "qualname": qual})
        walk(child, out)


def main():
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            src = f.read()
        out = []
        try:
            walk(compile(src, path, "exec", dont_inherit=True), out)
        except (SyntaxError, ValueError) as e:
            print(json.dumps({"file": path, "error": str(e)}))
            continue
        for o in out:
            o["file"] = path
            print(json.dumps(o))


main()
