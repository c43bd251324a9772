"""The corpus pipeline example: per-file results, failure kinds and its CLI."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "corpus_pipeline.py"

GOOD_SOURCE = b"""\
import os


def first():
    return 1


async def second():
    return 2


class Third:
    def method(self):
        return 3
"""


def load_pipeline():
    spec = importlib.util.spec_from_file_location("corpus_pipeline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pipeline = load_pipeline()


def run_one(folder: Path, name: str):
    """Run the msgflux pipeline over one file of `folder` and return its message."""
    paths = pipeline.find_files(folder, "*.py")
    progress = pipeline.Progress(len(paths), "test", use_bar=False)
    results = pipeline.run_with_msgflux(paths, folder, 16, 30.0, progress)
    by_name = {msg.name: msg for msg in results}
    return by_name[name]


def run_cli(*args: str, timeout: float = 50) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder with one file of every kind the pipeline reports."""
    (tmp_path / "good.py").write_bytes(GOOD_SOURCE)
    (tmp_path / "bad_syntax.py").write_bytes(b"def broken(:\n    pass\n")
    (tmp_path / "blob.py").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "loop.py").symlink_to("loop.py")
    nested = tmp_path / "pkg"
    nested.mkdir()
    (nested / "module.py").write_bytes(b"VALUE = 1\n")
    return tmp_path


def test_clean_file_counts(corpus):
    msg = run_one(corpus, "good.py")

    assert msg.status == "ok"
    assert msg.ast.functions == 3
    assert msg.ast.classes == 1
    assert msg.ast.lines == GOOD_SOURCE.count(b"\n")


def test_clean_file_hash_and_size(corpus):
    msg = run_one(corpus, "good.py")

    assert msg.sha256 == hashlib.sha256(GOOD_SOURCE).hexdigest()
    assert msg.zlib.size == len(zlib.compress(GOOD_SOURCE))
    assert msg.size == len(GOOD_SOURCE)


def test_syntax_error_names_line(corpus):
    msg = run_one(corpus, "bad_syntax.py")

    assert msg.status == "syntax_error"
    assert "line 1" in msg.error


def test_file_with_nul_bytes_is_binary(corpus):
    msg = run_one(corpus, "blob.py")

    assert msg.status == "binary"
    assert "NUL" in msg.error


def test_binary_file_is_still_hashed(corpus):
    msg = run_one(corpus, "blob.py")

    data = (corpus / "blob.py").read_bytes()
    assert msg.sha256 == hashlib.sha256(data).hexdigest()


def test_undecodable_text_is_a_syntax_error(tmp_path):
    (tmp_path / "latin.py").write_bytes(b"# coding: utf-8\nname = 'caf\xe9'\n")

    msg = run_one(tmp_path, "latin.py")

    assert msg.status == "syntax_error"
    assert "invalid utf-8" in msg.error


def test_declared_encoding_is_honoured(tmp_path):
    (tmp_path / "latin.py").write_bytes(b"# coding: latin-1\nname = 'caf\xe9'\n")

    msg = run_one(tmp_path, "latin.py")

    assert msg.status == "ok"


def test_symlink_loop_is_unreadable(corpus):
    msg = run_one(corpus, "loop.py")

    assert msg.status == "unreadable"
    assert "symbolic links" in msg.error


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
def test_fifo_is_unreadable(tmp_path):
    os.mkfifo(tmp_path / "pipe.py")

    msg = run_one(tmp_path, "pipe.py")

    assert msg.status == "unreadable"
    assert msg.error == "not a regular file"


def test_removed_file_is_vanished(corpus):
    paths = pipeline.find_files(corpus, "*.py")
    (corpus / "good.py").unlink()

    results = pipeline.run_with_msgflux(
        paths, corpus, 16, 30.0, pipeline.Progress(len(paths), "test", False)
    )

    statuses = {msg.name: msg.status for msg in results}
    assert statuses["good.py"] == "vanished"
    assert statuses["pkg/module.py"] == "ok"


def test_failures_spare_other_files(corpus):
    paths = pipeline.find_files(corpus, "*.py")

    results = pipeline.run_with_msgflux(
        paths, corpus, 2, 30.0, pipeline.Progress(len(paths), "test", False)
    )

    assert [msg.name for msg in results] == [
        str(path.relative_to(corpus)) for path in paths
    ]
    assert {msg.name: msg.status for msg in results} == {
        "bad_syntax.py": "syntax_error",
        "blob.py": "binary",
        "good.py": "ok",
        "loop.py": "unreadable",
        "pkg/module.py": "ok",
    }


def test_plain_loop_matches_msgflux(corpus):
    paths = pipeline.find_files(corpus, "*.py")

    gathered = pipeline.run_with_msgflux(
        paths, corpus, 16, 30.0, pipeline.Progress(len(paths), "test", False)
    )
    looped = pipeline.run_in_loop(
        paths, corpus, pipeline.Progress(len(paths), "test", False)
    )

    assert pipeline.compare_runs(gathered, looped) == []


def test_find_files_skips_folders(tmp_path):
    for folder in ("lib", "site-packages", "__pycache__"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.py").write_bytes(b"")

    paths = pipeline.find_files(tmp_path, "*.py", {"site-packages"})

    assert paths == [tmp_path / "lib" / "m.py"]


def test_cli_json_lists_every_file(corpus, tmp_path):
    out = tmp_path / "out.json"

    completed = run_cli(str(corpus), "--json", str(out))

    assert completed.returncode == 0, completed.stderr
    document = json.loads(out.read_text())
    assert len(document["files"]) == 5
    assert document["summary"]["statuses"]["ok"] == 2


def test_cli_report_prints_both_timings(corpus):
    completed = run_cli(str(corpus))

    assert "| msgflux |" in completed.stdout
    assert "| plain loop |" in completed.stdout
    assert "msgflux vs plain loop:" in completed.stdout


def test_cli_report_lists_each_failure(corpus):
    completed = run_cli(str(corpus), "--no-loop")

    assert "failures: 3" in completed.stdout
    assert "syntax_error  bad_syntax.py" in completed.stdout
    assert "binary        blob.py" in completed.stdout
    assert "unreadable    loop.py" in completed.stdout


def test_cli_logs_progress_off_terminal(corpus):
    completed = run_cli(str(corpus), "--no-loop")

    assert "msgflux: 5 of 5 files" in completed.stderr


def test_cli_progress_bar_on_request(corpus):
    pytest.importorskip("tqdm")

    completed = run_cli(str(corpus), "--no-loop", "--progress", "bar")

    assert "5/5" in completed.stderr
    assert "msgflux: 5 of 5 files" not in completed.stderr


def test_cli_reports_batch_timeout(tmp_path):
    # Parsing about 200 kB of source takes far longer than the 1 ms deadline.
    body = "".join(f"def f{i}(a):\n    return [a * {i}]\n" for i in range(8000))
    (tmp_path / "big.py").write_text(body)
    out = tmp_path / "out.json"

    completed = run_cli(
        str(tmp_path), "--no-loop", "--batch-timeout", "0.001", "--json", str(out)
    )

    assert completed.returncode == 0, completed.stderr
    (record,) = json.loads(out.read_text())["files"]
    assert record["status"] == "timeout"
    assert "timeout" in record["error"]


def test_cli_missing_folder_exits(tmp_path):
    completed = run_cli(str(tmp_path / "absent"))

    assert completed.returncode == 2
    assert "corpus folder not found" in completed.stderr


def test_cli_no_matches_exits(tmp_path):
    completed = run_cli(str(tmp_path))

    assert completed.returncode == 2
    assert "no files match '*.py'" in completed.stderr
