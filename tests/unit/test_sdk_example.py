"""The agent in agents/README.md compiles with the SDK and behaves as the text says."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

from igor import manifest
from igor.host import Engine
from igor.runtime import AgentRuntime

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_example_agent_builds_ticks_and_resumes(tmp_path):
    source = re.search(r"```c\n(.*?)```", (REPO / "agents" / "README.md").read_text(), re.S)
    assert source, "agents/README.md has no C example"
    tree = tmp_path / "agents"
    shutil.copytree(REPO / "agents" / "sdk", tree / "sdk")
    shutil.copy(REPO / "agents" / "Makefile", tree / "Makefile")
    (tree / "example").mkdir()
    (tree / "example" / "agent.c").write_text(source.group(1))
    (tree / "example" / "agent.manifest.json").write_text(
        '{"capabilities": {"log": {"version": 1}}}'
    )
    subprocess.run(["make", "-s", "-C", str(tree)], check=True)
    wasm = (tree / "build" / "example.wasm").read_bytes()
    parsed = manifest.parse((tree / "build" / "example.manifest.json").read_bytes())
    engine = Engine()
    try:
        agent = AgentRuntime(engine, wasm, parsed, agent_id="docs/example", budget=10**9, price=1)
        for _ in range(3):
            agent.tick()
        cp = agent.checkpoint()
        resumed = AgentRuntime(
            engine, wasm, parsed, agent_id="docs/example", budget=0, price=1, checkpoint=cp
        )
        resumed.tick()
        assert struct.unpack("<Q", resumed.state)[0] == 4
        assert [c.request for c in agent.log.records[0].calls] == [b"tick"]
    finally:
        engine.close()
