// The offsets of collector/python/layout.go, printed by a program built
// against a CPython build's headers, e.g. for 3.11:
//   inc=$(pyenv root)/versions/3.11.7/include/python3.11
//   gcc -I$inc -I$inc/internal -o /tmp/offsets offsets.c && /tmp/offsets
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_interp.h"
#endif
#include "internal/pycore_pystate.h"
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#include "internal/pycore_runtime.h"
#else
#include "frameobject.h"
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_runtime.h"
#endif
#endif
#define P(name, expr) printf("%s=%zu\n", name, (size_t)(expr))
int main(void) {
	P("runtime_interpreters_head", offsetof(_PyRuntimeState, interpreters.head));
	P("interp_next", offsetof(PyInterpreterState, next));
#if PY_VERSION_HEX >= 0x030B0000
	P("interp_tstate_head", offsetof(PyInterpreterState, threads.head));
#else
	P("interp_tstate_head", offsetof(PyInterpreterState, tstate_head));
#endif
	P("tstate_next", offsetof(PyThreadState, next));
	P("tstate_thread_id", offsetof(PyThreadState, thread_id));
#if PY_VERSION_HEX >= 0x030D0000
	P("tstate_frame", offsetof(PyThreadState, current_frame));
	P("cframe_current_frame", 0);
#elif PY_VERSION_HEX >= 0x030B0000
	P("tstate_frame", offsetof(PyThreadState, cframe));
	P("cframe_current_frame", offsetof(_PyCFrame, current_frame));
	P("cframe_previous", offsetof(_PyCFrame, previous));
#else
	P("tstate_frame", offsetof(PyThreadState, frame));
	P("cframe_current_frame", 0);
#endif
#if PY_VERSION_HEX >= 0x030B0000
	P("frame_previous", offsetof(_PyInterpreterFrame, previous));
#if PY_VERSION_HEX >= 0x030D0000
	P("frame_code", offsetof(_PyInterpreterFrame, f_executable));
	P("frame_instr", offsetof(_PyInterpreterFrame, instr_ptr));
#else
	P("frame_code", offsetof(_PyInterpreterFrame, f_code));
	P("frame_instr", offsetof(_PyInterpreterFrame, prev_instr));
#endif
#if PY_VERSION_HEX >= 0x030C0000
	P("frame_owner", offsetof(_PyInterpreterFrame, owner));
	P("frame_is_entry", 0);
#else
	P("frame_owner", offsetof(_PyInterpreterFrame, owner));
	P("frame_is_entry", offsetof(_PyInterpreterFrame, is_entry));
#endif
	P("code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
	P("code_qualname", offsetof(PyCodeObject, co_qualname));
	P("code_linetable", offsetof(PyCodeObject, co_linetable));
#else
	P("frame_previous", offsetof(PyFrameObject, f_back));
	P("frame_code", offsetof(PyFrameObject, f_code));
	P("frame_instr", offsetof(PyFrameObject, f_lasti));
	P("frame_owner", 0);
	P("frame_is_entry", 0);
	P("code_adaptive", 0);
	P("code_qualname", 0);
#if PY_VERSION_HEX >= 0x030A0000
	P("code_linetable", offsetof(PyCodeObject, co_linetable));
#else
	P("code_linetable", offsetof(PyCodeObject, co_lnotab));
#endif
#endif
	P("code_firstlineno", offsetof(PyCodeObject, co_firstlineno));
	P("code_name", offsetof(PyCodeObject, co_name));
	P("code_filename", offsetof(PyCodeObject, co_filename));
	P("code_size", sizeof(PyCodeObject));
	P("ascii_size", sizeof(PyASCIIObject));
	P("compact_size", sizeof(PyCompactUnicodeObject));
	P("unicode_state", offsetof(PyASCIIObject, state));
	P("bytes_sval", offsetof(PyBytesObject, ob_sval));
	P("object_type", offsetof(PyObject, ob_type));
	return 0;
}
