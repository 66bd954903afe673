#!/usr/bin/env python3
"""Runs a program and checks its exit status and that its output contains a
text, and that no sanitizer reported anything (a child process started by
the program reports on the same stderr, and its own exit status is not ours
to see). Usage: expect_output.py TEXT PROGRAM [ARGS...]"""
import subprocess, sys

SANITIZER_REPORTS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer",
                     "ERROR: LeakSanitizer", "runtime error:")

text, cmd = sys.argv[1], sys.argv[2:]
proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
sys.stdout.write(proc.stdout)
sys.stderr.write(proc.stderr)
if proc.returncode != 0:
    sys.exit(f"{cmd[0]} exited with {proc.returncode}")
if text not in proc.stdout:
    sys.exit(f"expected {text!r} in the output")
for report in SANITIZER_REPORTS:
    if report in proc.stderr:
        sys.exit(f"a sanitizer reported: {report!r}")
