"""The quiet terminal: our lines to the terminal, everything else (fds 1 and 2) to the sweep log."""
import io
import pickle
import subprocess
import sys

from sweeper import console


def test_quiet_sends_other_output_to_the_log_and_ours_to_the_terminal(tmp_path, capfd):
    log = tmp_path / "sweep.log"
    with console.quiet(log) as out:
        out.line("ours")
        print("a library's print")
        print("a library's warning", file=sys.stderr)
        subprocess.run([sys.executable, "-c", "print('a child process')"], check=True)  # e.g. raylet, wandb-core
        out.warn("our warning")
    print("after")
    captured = capfd.readouterr()
    assert captured.out.splitlines() == ["ours", "after"] and captured.err.splitlines() == ["our warning"]
    text = log.read_text()
    for line in ("a library's print", "a library's warning", "a child process"):
        assert line in text
    assert "ours" not in text


def test_quiet_appends_and_verbose_redirects_nothing(tmp_path, capfd):
    log = tmp_path / "sweep.log"
    for _ in range(2):
        with console.quiet(log):
            print("noise")
    assert log.read_text().count("noise") == 2 and log.read_text().count("=====") == 2
    with console.quiet(tmp_path / "other.log", verbose=True) as out:
        print("visible")
        out.line("ours")
    assert capfd.readouterr().out.splitlines() == ["visible", "ours"]
    assert not (tmp_path / "other.log").exists()


def test_plain_progress_lines_off_a_terminal():
    stream = io.StringIO()
    display = console.ProgressDisplay(console.Console(stream, stream), total=4)
    display.update(0, 1, 0, "best -", None)  # counts alone print nothing off a terminal
    display.update(1, 1, 0, "best 0.7000 (A seed 0)", "finished A seed 0: val_auc_overall 0.7000")
    display.heartbeat("B seed 0 epoch 3: val_auc_overall 0.6600")
    display.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[1/4 done, 1 running, 0 failed] ")
    assert lines[0].endswith("| finished A seed 0: val_auc_overall 0.7000 | best 0.7000 (A seed 0)")
    assert lines[1].startswith("[running ") and "B seed 0 epoch 3" in lines[1]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar_with_event_lines_above_it():
    stream = _Terminal()
    display = console.ProgressDisplay(console.Console(stream, stream), total=2)
    display.update(1, 1, 0, "best 0.7000 (A seed 0)", "finished A seed 0: val_auc_overall 0.7000")
    display.heartbeat("not printed: the bar's clock shows progress")
    display.close()
    text = stream.getvalue()
    assert "finished A seed 0: val_auc_overall 0.7000\n" in text and "1/2" in text and "not printed" not in text


def test_console_and_display_survive_tunes_pickling(tmp_path):
    stream = _Terminal()
    display = console.ProgressDisplay(console.Console(stream, stream), total=2)
    display.update(1, 1, 0, "best -", "event")
    copy = pickle.loads(pickle.dumps(display))
    assert copy.bar is None and copy.total == 2 and copy.console.out is sys.stdout
    display.close()
