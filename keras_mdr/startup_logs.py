"""TensorFlow's C++ start-up log lines, held to the level `TF_CPP_MIN_LOG_LEVEL` asks for.

`TF_CPP_MIN_LOG_LEVEL` (0 all, 1 no INFO, 2 no WARNING, 3 no ERROR) silences
most of TensorFlow's C++ logging, but not what is logged while
`import tensorflow` loads its shared libraries, before TensorFlow has set up
absl logging: absl writes those messages to stderr whatever the level
("WARNING: All log messages before absl::InitializeLog() is called are
written to STDERR", then for instance `cudart_stub.cc] Could not find cuda
drivers on your machine` on a machine without a GPU). No environment variable
reaches absl's own threshold at that point (it is a command-line flag of the
C++ program).

`import_tensorflow(min_level)` imports TensorFlow with the process's stderr
(file descriptor 2, which C++ writes to) sent to a temporary file, then writes
back every captured line except absl-formatted messages below `min_level`:
the level the user asked for, applied to the lines that escaped it. Anything
else written during the import (Python warnings, an error) is kept. For the
command line only: a library must not redirect its host's stderr.
"""

import contextlib
import os
import re
import sys
import tempfile

# absl's prefix: severity, date, time, thread id, file:line], as in
# "I0000 00:00:1796102414.466882    8631 cudart_stub.cc:31] " (before initialisation the time is raw seconds).
_ABSL_PREFIX = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ [^\]\s]+:\d+\] ")
_SEVERITY_LEVEL = {"I": 0, "W": 1, "E": 2, "F": 3}
# A Python warning or traceback line, never part of a C++ message.
_PYTHON_LINE = re.compile(r"^(\S.*:\d+: \w*(Warning|Error)\b|Traceback |  File \")")
# absl's own notice, printed once before the first early message; a WARNING.
_PRE_INIT_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def filter_startup_lines(text, min_level):
    """`text` without the absl log messages whose severity is below `min_level`.

    A line without an absl prefix right after an absl message continues that
    message (TensorFlow logs a few multi-line messages) and shares its fate,
    unless it is Python's (a warning, a traceback); any other line is kept.
    absl's notice about early messages is kept only in front of an early
    message that is kept.
    """
    kept = []
    notice = None
    in_message = drop = False
    for line in text.splitlines(keepends=True):
        if line.startswith(_PRE_INIT_NOTICE):
            notice, in_message = line, False
            continue
        match = _ABSL_PREFIX.match(line)
        if match:
            in_message, drop = True, _SEVERITY_LEVEL[match.group(1)] < min_level
        elif not in_message or _PYTHON_LINE.match(line):
            in_message = drop = False
        if not drop:
            if notice is not None and match:
                kept.append(notice)
            kept.append(line)
        if match or not in_message:
            notice = None
    return "".join(kept)


@contextlib.contextmanager
def _stderr_filtered(min_level):
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sys.stderr.write(filter_startup_lines(capture.read().decode(errors="replace"), min_level))
            sys.stderr.flush()


def import_tensorflow(min_level):
    """Imports TensorFlow, dropping start-up log lines below `min_level` (see the module docstring)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _stderr_filtered(min_level):
        import tensorflow
    return tensorflow
