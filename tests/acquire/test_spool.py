"""The spool: durable commits, ordered reads, byte accounting and dead letters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labdock.acquire.spool import DeadLetter, DeadLetterStore, Spool, SpoolError


def test_append_take_remove(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.append([(1, "a/b", "m v=1 1"), (2, "a/c", "m v=2 2\nm v=3 3")])
    assert spool.messages == 2
    assert spool.bytes == len("m v=1 1") + len("m v=2 2\nm v=3 3")
    entries = spool.take(0, max_lines=10, max_bytes=1 << 20)
    assert [entry.body for entry in entries] == ["m v=1 1", "m v=2 2\nm v=3 3"]
    assert entries[0].topic == "a/b"
    spool.remove(entries[:1])
    assert spool.messages == 1
    assert [entry.body for entry in spool.take(0, 10, 1 << 20)] == ["m v=2 2\nm v=3 3"]
    spool.close()


def test_take_respects_bounds(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.append([(1, "t", f"m v={n} {n}") for n in range(10)])
    assert len(spool.take(0, max_lines=3, max_bytes=1 << 20)) == 3
    assert len(spool.take(0, max_lines=100, max_bytes=20)) == 2
    assert len(spool.take(0, max_lines=100, max_bytes=1)) == 1, (
        "the first entry always fits"
    )
    spool.close()


def test_counts_survive_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.append([(1, "t", "m v=1 1"), (1, "t", "m v=2 2")])
    spool.close()
    reopened = Spool(tmp_path, 1 << 20)
    assert reopened.messages == 2
    assert reopened.bytes == 14
    reopened.close()


def test_full_at_byte_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 16)
    spool.append([(1, "t", "x" * 40_000)])
    assert not spool.is_full
    spool.append([(1, "t", "x" * 40_000)])
    assert spool.is_full
    spool.remove(spool.take(0, 1, 1 << 20))
    assert not spool.is_full
    spool.close()


def test_ids_not_reused_after_emptying(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.append([(1, "t", "m v=1 1")])
    first = spool.take(0, 10, 1 << 20)
    spool.remove(first)
    spool.append([(1, "t", "m v=2 2")])
    second = spool.take(0, 10, 1 << 20)
    assert second[0].id > first[0].id
    spool.close()


def test_commit_survives_sigkill(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from labdock.acquire.spool import Spool\n"
        "spool = Spool(Path(sys.argv[1]), 1 << 20)\n"
        "spool.append([(1, 't', f'm v={n} {n}') for n in range(500)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert result.returncode == -9
    spool = Spool(tmp_path, 1 << 20)
    assert spool.messages == 500
    spool.close()


def test_unwritable_directory_raises(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/labdock-spool")  # not creatable, even by root
    else:
        target = tmp_path / "locked" / "spool"
        target.parent.mkdir()
        target.parent.chmod(0o500)
    with pytest.raises(SpoolError) as caught:
        Spool(target, 1 << 20)
    assert "cannot open the spool" in str(caught.value)
    assert "writable" in str(caught.value)


def test_deadletters_listed_and_resolved(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    letters = [
        DeadLetter(10, "a/b", b"online", "decode", "json_decode_error", "not JSON"),
        DeadLetter(11, "a/c", b"\xff", "decode", "invalid_utf8", "byte 0xff"),
    ]
    spool.append([], letters)
    spool.close()
    store = DeadLetterStore(tmp_path)
    assert store.counts() == {"invalid_utf8": 1, "json_decode_error": 1}
    listed = store.list(reason="invalid_utf8")
    assert [letter.payload for letter in listed] == [b"\xff"]
    first = store.list()[0]
    store.resolve([first], [(5, "a/b", "m v=1 1")], [(listed[0], "still_bad", "again")])
    assert store.counts() == {"still_bad": 1}
    store.close()
    reopened = Spool(tmp_path, 1 << 20)
    assert reopened.messages == 1
    reopened.close()


def test_deadletter_store_needs_existing_spool(tmp_path: Path) -> None:
    with pytest.raises(SpoolError) as caught:
        DeadLetterStore(tmp_path / "nowhere")
    assert "no spool at" in str(caught.value)


def test_entry_counts_its_messages(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.append([(1, "a", "m v=1 1\nm v=2 2\nm v=3 3", 3, 3), (1, "b", "m v=4 4")])
    assert spool.messages == 4
    entries = spool.take(0, max_lines=10, max_bytes=1 << 20)
    assert [entry.messages for entry in entries] == [3, 1]
    assert [entry.line_count() for entry in entries] == [3, 1]
    spool.remove(entries[:1])
    assert spool.messages == 1
    spool.close()
    reopened = Spool(tmp_path, 1 << 20)
    assert reopened.messages == 1
    reopened.close()


def test_old_spool_gets_count_columns(tmp_path: Path) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_path / "spool.sqlite")
    old.executescript(
        "CREATE TABLE lines (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " spooled_ns INTEGER NOT NULL, topic TEXT NOT NULL, body TEXT NOT NULL);"
        "INSERT INTO lines (spooled_ns, topic, body) VALUES (1, 't', 'm v=1 1');"
    )
    old.commit()
    old.close()
    spool = Spool(tmp_path, 1 << 20)
    assert spool.messages == 1
    spool.append([(2, "t", 'm s="a\nb" 2\nm v=3 3', 2, 2)])
    assert spool.messages == 3
    entries = spool.take(0, 10, 1 << 20)
    assert [entry.messages for entry in entries] == [1, 2]
    assert [entry.line_count() for entry in entries] == [1, 2]
    spool.close()


def test_uncounted_entry_counts_its_lines() -> None:
    from labdock.acquire.spool import SpooledEntry

    entry = SpooledEntry(1, 1, "t", 'm s="a\nb" 1\nm v=2 2')
    assert entry.line_count() == 2


def test_damaged_spool_names_fix(tmp_path: Path) -> None:
    (tmp_path / "spool.sqlite").write_bytes(b"not a database at all" * 400)
    with pytest.raises(SpoolError) as caught:
        Spool(tmp_path, 1 << 20)
    message = str(caught.value)
    assert "is damaged" in message
    assert "move it" in message
    assert "writable" not in message


def test_deadletter_store_damaged_spool(tmp_path: Path) -> None:
    (tmp_path / "spool.sqlite").write_bytes(b"not a database at all" * 400)
    with pytest.raises(SpoolError) as caught:
        DeadLetterStore(tmp_path)
    assert "is damaged" in str(caught.value)
