"""The CLI contract: commands, --json, stdin questions, exit codes, no traceback, lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from newsbot.cli import main
from tests.conftest import LAMBRECHT, REFERENCE_QUESTION, ROOT, SAMPLES, write

HEAVY = ("torch", "sentence_transformers", "transformers", "langchain_huggingface")


def run(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "newsbot", *args], input=stdin, text=True,
                          capture_output=True, cwd=ROOT, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def data(tmp_path, make_bot):
    d = tmp_path / "store"
    make_bot(data_dir=d).ingest([SAMPLES])
    return d


def test_ask_json_several_questions_and_stdin_in_one_process(data):
    stdin = f"{REFERENCE_QUESTION}\n\nwhat is the capital of Peru?\n"
    r = run("--data-dir", str(data), "ask", "--json", "-", stdin=stdin)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["question"] for d in lines] == [REFERENCE_QUESTION, "what is the capital of Peru?"]
    first = lines[0]["citations"][0]
    assert first["n"] == 1 and LAMBRECHT in first["quote"]
    assert (first["source"], first["published"]) == ("Interfax", "2022-01-27")
    assert lines[1]["abstained"] and lines[1]["citations"] == []
    assert "Traceback" not in r.stderr


def test_ask_text_rendering_and_unquoted_words(data, capsys):
    assert main(["--data-dir", str(data), "ask", "who", "did", "Wallace", "meet", "in",
                 "Germany?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Q: {REFERENCE_QUESTION}")
    assert "[1] \u201cAccording to The Times source" in out
    assert "Interfax, London, 2022-01-27" in out


def test_ask_bad_question_is_one_line_and_exit_2(data, capsys):
    assert main(["--data-dir", str(data), "ask", "x" * 10_000]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "newsbot: the question is 10,000 characters long; the limit is 1,000"
    assert main(["--data-dir", str(data), "ask", "--json", REFERENCE_QUESTION, "  "]) == 2
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert out[1] == {"question": "  ", "error": "the question is empty"}
    assert main(["--data-dir", str(data), "ask", "--since", "yesterday", "sanctions?"]) == 2


def test_filters_and_library_options(data, capsys):
    assert main(["--data-dir", str(data), "ask", "--json", "--source", "Interfax", "--until",
                 "2022-01-31", "--k", "3", "what did Wallace say about sanctions?"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["passages"]) <= 3 and {p["source"] for p in d["passages"]} == {"Interfax"}
    assert main(["--data-dir", str(data), "ask", "--library", "elsewhere", "sanctions?"]) == 2
    assert "no articles stored in elsewhere" in capsys.readouterr().err


def test_ingest_summary_and_exit_codes(tmp_path, capsys):
    d = str(tmp_path / "s")
    assert main(["--data-dir", d, "ingest", str(SAMPLES), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("added 8, updated 0, unchanged 0, failed 0; 47 sentences")
    bad = write(tmp_path / "bad.txt", b"\x00\x01")
    assert main(["--data-dir", d, "ingest", str(SAMPLES), str(bad), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["unchanged"] == 8 and report["failed"][0]["where"].endswith("bad.txt")


def test_show_sources_remove(data, capsys):
    assert main(["--data-dir", str(data), "sources", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 8 and rows[0]["published"] >= rows[-1]["published"]
    assert main(["--data-dir", str(data), "show", "sample-pipeline-delay", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["title"] == "Regulator delays decision on Baltic gas pipeline"
    s, e = shown["sentence_spans"][0]
    assert shown["text"][s:e].startswith("Germany's energy regulator")
    assert main(["--data-dir", str(data), "show", "sample-pipeline-delay"]) == 0
    assert "source:    Newsbot Sample Wire" in capsys.readouterr().out
    assert main(["--data-dir", str(data), "remove", "sample-pipeline-delay"]) == 0
    assert main(["--data-dir", str(data), "show", "sample-pipeline-delay"]) == 2
    assert "no article 'sample-pipeline-delay'" in capsys.readouterr().err
    assert main(["--data-dir", str(data), "remove", "sample-pipeline-delay"]) == 2


def test_commands_without_a_model_do_not_import_the_ml_stack(data):
    code = (
        "import sys, contextlib, io\n"
        "from newsbot.cli import main\n"
        f"d = {str(data)!r}\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for argv in (['sources'], ['show', 'interfax-wallace-2022-01-27'],\n"
        "                 ['remove', 'sample-pipeline-delay'], ['show', 'nope']):\n"
        "        main(['--data-dir', d, *argv])\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_help_and_usage_errors():
    r = run("--help")
    assert r.returncode == 0 and "ingest" in r.stdout and "ask" in r.stdout
    r = run("ask")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_config_error_is_one_line_exit_2(tmp_path):
    r = run("--data-dir", str(tmp_path), "sources", env={"NEWSBOT_TOP_K": "lots"})
    assert r.returncode == 2
    assert r.stderr.strip().startswith("newsbot: invalid setting NEWSBOT_TOP_K:")
    assert len(r.stderr.strip().splitlines()) == 1


def test_data_dir_that_cannot_be_created_exit_2(tmp_path):
    blocker = write(tmp_path / "file", "x")
    r = run("--data-dir", str(blocker / "sub"), "sources")
    assert r.returncode == 2 and r.stderr.startswith("newsbot: cannot create the data directory")
    assert "Traceback" not in r.stderr


def test_demo_loads_samples_once_then_answers(tmp_path, capsys):
    d = str(tmp_path / "demo")
    assert main(["--data-dir", d, "demo"]) == 0
    captured = capsys.readouterr()
    assert "Loading the bundled sample articles" in captured.err
    assert captured.out.startswith(f"Q: {REFERENCE_QUESTION}")
    assert LAMBRECHT in " ".join(captured.out.split())  # the terminal rendering wraps lines
    assert main(["--data-dir", d, "demo", "--json"]) == 0
    captured = capsys.readouterr()
    assert "Loading" not in captured.err
    assert LAMBRECHT in json.loads(captured.out)["citations"][0]["quote"]


@pytest.mark.parametrize(("quiet", "tty", "shown"), [(False, True, True), (True, True, False),
                                                      (False, False, False)])
def test_progress_bar_only_on_a_terminal_and_not_quiet(tmp_path, quiet, tty, shown):
    import pty

    master, slave = pty.openpty() if tty else (None, subprocess.PIPE)
    if tty:  # a terminal has a size; tqdm draws nothing in zero columns
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    args = [sys.executable, "-m", "newsbot", "--data-dir", str(tmp_path / "d"), "ingest",
            str(SAMPLES / "2022-01-24-dutch-minister-berlin.txt")] + (["--quiet"] if quiet else [])
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=slave)
    out, err = proc.communicate(timeout=300)
    if tty:
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        err = b"".join(chunks)
    assert proc.returncode == 0 and out.startswith(b"added 1")
    assert (b"articles" in err) is shown, err
