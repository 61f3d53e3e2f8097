"""Frame files for training records: a folder tree or `.tar`/`.tar.gz` shards holding `frames/<vid>/000000.jpg`.

Records name frames by relative path; `FrameStore` resolves them in either layout so the JSONL does not change
when the frames are sharded. Shards are indexed once (member name -> shard) and opened lazily per process.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

import PIL.Image

from elysium.utils.paths import PathOutsideRootError, inside_root


class FrameStore:
    """Opens frames by relative path from `root` (a folder) and/or tar shards; never reads the whole shard."""

    def __init__(self, root: str | os.PathLike | None = None, shards: Iterable[str | os.PathLike] = ()):
        self.root = Path(root) if root is not None else None
        self.shards = [Path(s) for s in shards]
        self._index: dict[str, Path] = {}
        self._open: dict[Path, tarfile.TarFile] = {}
        self._pid = os.getpid()
        for shard in self.shards:
            with tarfile.open(shard) as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        self._index[self._key(member.name)] = shard

    @classmethod
    def from_path(cls, frames_root: str | os.PathLike | None) -> FrameStore:
        """A folder of frames, one shard, or a folder whose `*.tar`/`*.tar.gz` files are the shards."""
        if frames_root is None:
            return cls()
        path = Path(frames_root)
        if path.is_file():
            return cls(shards=[path])
        shards = sorted(p for p in path.glob("*.tar*") if p.name.endswith((".tar", ".tar.gz", ".tgz")))
        return cls(root=path, shards=shards)

    @staticmethod
    def _key(name: str) -> str:
        name = name.lstrip("./")
        return name[len("frames/") :] if name.startswith("frames/") else name

    def inside(self, relative: str) -> bool:
        """Whether `relative` stays inside the frames root (no `..` out of it, not absolute)."""
        try:
            inside_root(self.root if self.root is not None else ".", relative)
        except PathOutsideRootError:
            return False
        return True

    def exists(self, relative: str) -> bool:
        """Whether the frame can be found (cheap: a stat or an index look-up, no decoding)."""
        if not self.inside(relative):
            return False
        if self.root is not None and (self.root / relative).is_file():
            return True
        return self._key(relative) in self._index

    def read_bytes(self, relative: str) -> bytes:
        """The frame's file; `PathOutsideRootError` (a ValueError) for a path that leaves the root."""
        if self.root is not None:
            path = inside_root(self.root, relative)
            if path.is_file():
                return path.read_bytes()
        elif not self.inside(relative):
            raise PathOutsideRootError(f"frame path {relative!r} is absolute or climbs out with '..'")
        shard = self._index.get(self._key(relative))
        if shard is None:
            raise FileNotFoundError(f"frame {relative!r} is in neither {self.root} nor the {len(self.shards)} shards")
        if os.getpid() != self._pid:  # a forked dataloader worker must not share file handles
            self._open, self._pid = {}, os.getpid()
        tar = self._open.get(shard)
        if tar is None:
            tar = self._open[shard] = tarfile.open(shard)
        for name in (f"frames/{self._key(relative)}", self._key(relative), f"./frames/{self._key(relative)}"):
            try:
                member = tar.getmember(name)
                break
            except KeyError:
                continue
        else:
            raise FileNotFoundError(f"frame {relative!r} vanished from {shard}")
        handle = tar.extractfile(member)
        assert handle is not None
        return handle.read()

    def image_size(self, relative: str) -> tuple[int, int]:
        """`(w, h)` of a frame from its header, without decoding the pixels."""
        with PIL.Image.open(io.BytesIO(self.read_bytes(relative))) as image:
            return image.size

    def open_image(self, relative: str) -> PIL.Image.Image:
        """The frame decoded as RGB; raises `OSError`/`FileNotFoundError` for missing or unreadable files."""
        with PIL.Image.open(io.BytesIO(self.read_bytes(relative))) as image:
            return image.convert("RGB")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_open"] = {}
        return state
