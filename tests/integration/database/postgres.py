"""A throw-away PostgreSQL server: Debian's binaries, a temp data directory, 127.0.0.1 and a
free port, run as a non-root user (root hands it to the ``postgres`` account), stopped after."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.integration.ports import free_port

SERVER_USER = "postgres"  # created by Debian's postgresql package
SUPERUSER = "cds"


def server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/install-postgres.sh")
    return Path(found[-1]).parent


@dataclass
class PostgresServer:
    root: Path
    port: int
    bin_dir: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="aih-cds-pg-"))
        server = cls(root, free_port(), server_bin())
        if os.getuid() == 0:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(root, account.pw_uid, account.pw_gid)
        try:
            server._run(
                "initdb",
                ["-D", str(server.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "-N"],
            )
            server.resume()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    def resume(self) -> None:
        """Start the server on its data directory (after ``start`` made it, or ``pause``)."""
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F -c max_connections=200"
        log = str(self.root / "server.log")
        self._run("pg_ctl", ["-D", str(self.data), "-o", options, "-l", log, "-w", "start"])

    def pause(self) -> None:
        """Stop the server and keep its data: an outage that ``resume`` ends."""
        self._run("pg_ctl", ["-D", str(self.data), "-m", "fast", "-w", "stop"])

    def stop(self) -> None:
        try:
            self._run("pg_ctl", ["-D", str(self.data), "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, args: Sequence[str]) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.getuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120, cwd=self.root)  # noqa: S603
