"""The progress lines `make reproduce` echoes from a notebook's kernel (hybridlib/progress.py)."""
import os
import subprocess
import sys
import time

from hybridlib.progress import ENV, Echo, announce


def test_announce_never_stops_training(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    announce("step 1/2")  # no file named: nothing written anywhere
    monkeypatch.setenv(ENV, str(tmp_path / "gone" / "progress.log"))
    announce("step 2/2")  # a file that cannot be written: no error either
    assert list(tmp_path.iterdir()) == []


def test_echo_prints_a_child_processes_newest_line_and_cleans_up(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    printed = []
    with Echo(every_s=0.0, poll_s=0.05, prefix="> ", write=printed.append) as echo:
        assert os.environ[ENV] == str(echo.path)
        # a child process (as a notebook kernel is) inherits the variable
        subprocess.run([sys.executable, "-c", "from hybridlib.progress import announce\n"
                        "announce('hybrid [smoke] step 10/40: loss 8.000')"], check=True)
        deadline = time.monotonic() + 5
        while not printed and time.monotonic() < deadline:
            time.sleep(0.05)
    assert printed == ["> hybrid [smoke] step 10/40: loss 8.000"]
    assert ENV not in os.environ and not echo.path.exists()


def test_echo_waits_for_a_whole_line_and_throttles(monkeypatch):
    monkeypatch.setenv(ENV, "previous")
    printed = []
    with Echo(every_s=3600, poll_s=0.05, write=printed.append, prefix="") as echo:
        with open(echo.path, "a") as f:
            f.write("step 1/3\nstep 2/3\nstep 3")  # the last line is still being written
            f.flush()
            deadline = time.monotonic() + 5
            while not printed and time.monotonic() < deadline:
                time.sleep(0.05)
            f.write("/3\n")
        time.sleep(0.3)
    assert printed == ["step 2/3"]  # the newest whole line; then nothing within every_s
    assert os.environ[ENV] == "previous"
