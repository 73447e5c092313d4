"""Large message bodies as files: written and fsynced (file and folder)
before the row that names them is committed."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


class Spool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, data: bytes) -> str:
        path = self.directory / f"{uuid.uuid4().hex}.eml"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self._sync_dir()
        return str(path)

    def _sync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def files(self) -> list[Path]:
        """Every body here, and every one a crash left half-written."""
        return [*self.directory.glob("*.eml"), *self.directory.glob("*.tmp")]

    @staticmethod
    def read(path: str) -> bytes:
        return Path(path).read_bytes()

    @staticmethod
    def remove(path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
