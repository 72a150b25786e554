// SPDX-License-Identifier: GPL-2.0
/*
 * Built by make against one CPython version's own headers (-I its include directory) and run:
 * prints, as one line of TypeScript, where that version keeps what a stack walk reads (struct
 * py_offsets in bpf/systing.h). Nothing here is typed by hand but the choice of fields.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_code.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_runtime.h>
#include <stddef.h>
#include <stdio.h>

#define F(name, value) printf("%s%s: %u", first ? "" : ", ", name, (unsigned)(value)), first = 0

int main(void)
{
	int first = 1;

	printf("  \"%d.%d\": { ", PY_MAJOR_VERSION, PY_MINOR_VERSION);
	F("runtime_interpreters", offsetof(_PyRuntimeState, interpreters.head));
	F("interp_next", offsetof(PyInterpreterState, next));
	F("interp_threads", offsetof(PyInterpreterState, threads.head));
	F("tstate_next", offsetof(PyThreadState, next));
	F("tstate_native_tid", offsetof(PyThreadState, native_thread_id));
#if PY_VERSION_HEX < 0x030d0000
	F("tstate_cframe", offsetof(PyThreadState, cframe));
	F("current_frame", offsetof(_PyCFrame, current_frame));
	F("frame_code", offsetof(_PyInterpreterFrame, f_code));
	F("frame_instr", offsetof(_PyInterpreterFrame, prev_instr));
#else
	F("tstate_cframe", 0xffff);
	F("current_frame", offsetof(PyThreadState, current_frame));
	F("frame_code", offsetof(_PyInterpreterFrame, f_executable));
	F("frame_instr", offsetof(_PyInterpreterFrame, instr_ptr));
#endif
	F("frame_previous", offsetof(_PyInterpreterFrame, previous));
	F("frame_owner", offsetof(_PyInterpreterFrame, owner));
#if PY_VERSION_HEX < 0x030c0000
	F("frame_is_entry", offsetof(_PyInterpreterFrame, is_entry));
	F("owner_cstack", 0xff);
#else
	F("frame_is_entry", 0xffff);
	F("owner_cstack", FRAME_OWNED_BY_CSTACK);
#endif
	F("code_firstlineno", offsetof(PyCodeObject, co_firstlineno));
	F("code_filename", offsetof(PyCodeObject, co_filename));
	F("code_qualname", offsetof(PyCodeObject, co_qualname));
	F("code_linetable", offsetof(PyCodeObject, co_linetable));
	F("code_bytecode", offsetof(PyCodeObject, co_code_adaptive));
	F("unicode_state", offsetof(PyASCIIObject, state));
	F("unicode_length", offsetof(PyASCIIObject, length));
	F("unicode_ascii_data", sizeof(PyASCIIObject));
	F("unicode_compact_data", sizeof(PyCompactUnicodeObject));
	F("bytes_size", offsetof(PyVarObject, ob_size));
	F("bytes_data", offsetof(PyBytesObject, ob_sval));
	printf(" },\n");
	return 0;
}
