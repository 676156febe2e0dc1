"""A real PostgreSQL server for the tests that need one: started in a temporary folder on
127.0.0.1 (as the `postgres` user when we are root: the server refuses root), stopped after."""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    """The URL of a fresh PostgreSQL server (user postgres, trust authentication, local only)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or \
        [p for p in [shutil.which("initdb")] if p]
    if not found:
        pytest.fail("PostgreSQL's server is not installed: `make postgres` installs it "
                    "(Debian: apt-get install postgresql)")
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="mnist8k-pg-"))
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()
    run = lambda *args: subprocess.run(as_user + [str(a) for a in args], check=True,
                                       capture_output=True, text=True, timeout=120)
    run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    ctl = [bindir / "pg_ctl", "-D", data, "-l", base / "server.log"]
    run(*ctl, "-w", "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(*ctl, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
