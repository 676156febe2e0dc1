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

REPO = Path(__file__).resolve().parents[1]  # the checkout: every test file imports it from here


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A fresh PostgreSQL server (user postgres, trust authentication, local only) in a
    temporary folder: `url`, and stop() / start() for a test of the storage going away."""

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or \
            [p for p in [shutil.which("initdb")] if p]
        if not found:
            pytest.fail("PostgreSQL's server is not installed: `make postgres` installs it "
                        "(Debian: apt-get install postgresql)")
        self.bindir = Path(found[-1]).parent
        self.base = Path(tempfile.mkdtemp(prefix="mnist8k-pg-"))
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data, self.port = self.base / "data", free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run(self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, *args):
        subprocess.run(self.as_user + [str(a) for a in args], check=True, capture_output=True,
                       text=True, timeout=120)

    def _ctl(self, *args):
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.base / "server.log", *args)

    def start(self):
        """Start it (again), on the same port, and wait until it accepts connections."""
        self._ctl("-w", "-o", f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off", "start")

    def stop(self):
        """Stop it now: its sessions are ended, new connections refused."""
        self._ctl("-m", "fast", "-w", "stop")

    def remove(self):
        subprocess.run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                                       "immediate", "-w", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """The URL of a fresh PostgreSQL server (user postgres, trust authentication, local only)."""
    server = Server()
    try:
        yield server.url
    finally:
        server.remove()


@pytest.fixture
def postgres_server():
    """A PostgreSQL server of the test's own, which it may stop and start (`Server`)."""
    server = Server()
    try:
        yield server
    finally:
        server.remove()
