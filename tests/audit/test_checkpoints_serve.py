"""``turnlog serve --checkpoint-key KEYFILE --checkpoint-every S``: the service signs checkpoints
of the log on a schedule, only when the log grew, and the log verifies against them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import ServerConfig, TurnService
from turnlog.adapters.signing import load_signer, load_verifier, write_keypair
from turnlog.adapters.stores import open_store
from turnlog.engine import verify_log
from turnlog.engine.testing import RECORDED_AT, deltas


async def test_the_service_signs_checkpoints_while_the_log_grows(tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    write_keypair(key)
    async with await open_store(tmp_path / "t.db") as (log, messages):
        await log.append("s1", deltas(5), 0, recorded_at=RECORDED_AT)
        config = ServerConfig(checkpoint_every=0.05, recover_grace=0)
        service = TurnService(log, messages, EchoLLM(), config=config, signer=load_signer(key))
        await service.start()
        try:
            await asyncio.sleep(0.3)
            first = list(await log.checkpoints())
            assert [cp.size for cp in first] == [5]  # one, then nothing while the log does not grow
            await log.append("s1", deltas(3, start=5), 5, recorded_at=RECORDED_AT)
            for _ in range(40):
                await asyncio.sleep(0.05)
                if len(await log.checkpoints()) > 1:
                    break
        finally:
            await service.stop()
        assert [cp.size for cp in await log.checkpoints()] == [5, 8]
        assert service.checkpoints is not None and service.checkpoints.signed == 2
        report = await verify_log(log, keys=[load_verifier(f"{key}.pub")])
        assert report.ok, report.summary()
    assert key.read_bytes() not in (tmp_path / "t.db").read_bytes()


def test_serve_refuses_a_key_that_is_not_a_private_key(tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    write_keypair(key)
    run = [sys.executable, "-m", "turnlog.adapters.cli", "serve", "--db", str(tmp_path / "t.db")]
    proc = subprocess.run([*run, "--checkpoint-key", f"{key}.pub"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not an unencrypted PEM private key" in lines[0], proc.stderr
