"""`zonehost ...` run inside the test process: the same parser, settings and
commands as `python -m zonehost`, without the interpreter start-up and the
imports that cost each subprocess 1 to 4 s on a loaded CI machine.

`zonehost.config` reads the environment only in `Settings.load`, so the
store is chosen by setting ZONEHOST_* in `os.environ` (monkeypatch undoes
it). Each command runs in a worker thread because it calls `asyncio.run`
itself; its output is read back from capsys.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import pytest


@dataclass(frozen=True, slots=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


class InProcessCli:
    def __init__(self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> None:
        for key in [k for k in os.environ if k.startswith("ZONEHOST_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("ZONEHOST_"):
                monkeypatch.setenv(key, value)
        self.capsys = capsys

    def run(self, *args: str) -> Done:
        from zonehost.cli import main

        self.capsys.readouterr()  # start from clean buffers
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code if isinstance(exc.code, int) else 2
        out, err = self.capsys.readouterr()
        return Done(code, out, err)

    async def __call__(self, *args: str) -> Done:
        return await asyncio.to_thread(self.run, *args)

    async def ok(self, *args: str) -> str:
        """stdout of a command that must succeed (else both outputs in the failure)."""
        done = await self(*args)
        assert done.returncode == 0, f"zonehost {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout
