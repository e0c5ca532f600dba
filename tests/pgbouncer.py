"""A real PgBouncer for the tests and the benchmark: Debian's `pgbouncer`, in transaction
pooling mode, in front of one database of the test PostgreSQL server.

    with running_pgbouncer(database_url, pool_size=2) as pooler:
        pooler.url              # what DATABASE_CONNECTION_POOL_URL would be
        pooler.transactions()   # how many it has carried to the database (SHOW STATS)
        pooler.show("POOLS")    # any other SHOW of its admin console

It listens on a free port of 127.0.0.1, in a temporary directory that holds its config and
its log, and is stopped by its pid. PgBouncer refuses to run as root, so as root it is told to
switch to `nobody` (its -u option), who can read the directory and needs to write nothing.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import dj_database_url
import psycopg
import pytest

from tests.stack import free_port

STARTUP_TIMEOUT = 10
STOP_TIMEOUT = 10
UNPRIVILEGED_USER = "nobody"
# PgBouncer's admin console: a database of this name on PgBouncer's port.
ADMIN_DATABASE = "pgbouncer"


def pgbouncer_binary():
    """Debian installs it in /usr/sbin, often not on PATH; skip where it is missing (fail in CI,
    which must install it)."""
    found = shutil.which("pgbouncer", path=f"{os.environ['PATH']}{os.pathsep}/usr/sbin")
    if found is None:
        message = "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def pgbouncer_config(database, *, port, pool_size, users_file):
    """pgbouncer.ini: one database, of the same name, reached as its own user.

    A client's transactions may each get another server connection (transaction pooling),
    taken in turn from the pool (server_round_robin), as they do when many clients share it;
    without that, PgBouncer hands an idle client the connection it used last, which would hide
    what transaction pooling breaks. At most `pool_size` server connections, none in reserve.
    """
    server = (f"host={database['HOST']} port={database['PORT'] or 5432} dbname={database['NAME']} "
              f"user={database['USER']}")
    if database["PASSWORD"]:
        server += f" password={database['PASSWORD']}"
    return f"""\
[databases]
{database['NAME']} = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users_file}
admin_users = {database['USER']}
pool_mode = transaction
default_pool_size = {pool_size}
reserve_pool_size = 0
server_round_robin = 1
max_client_conn = 200
"""


class PgBouncer:
    def __init__(self, directory, database_url, pool_size):
        self.directory = directory
        self.direct_url = database_url
        self.database = dj_database_url.parse(database_url)
        self.port = free_port()
        credentials = self.database["USER"] + (f":{self.database['PASSWORD']}" if self.database["PASSWORD"] else "")
        self.url = f"postgres://{credentials}@127.0.0.1:{self.port}/{self.database['NAME']}"
        self.url_without_password = f"postgres://{self.database['USER']}@127.0.0.1:{self.port}/{self.database['NAME']}"
        self.log_path = directory / "pgbouncer.log"
        self.process = None
        users_file = directory / "users.txt"
        users_file.write_text(f'"{self.database["USER"]}" "{self.database["PASSWORD"] or ""}"\n')
        self.config_path = directory / "pgbouncer.ini"
        self.config_path.write_text(pgbouncer_config(self.database, port=self.port, pool_size=pool_size,
                                                     users_file=users_file))

    def start(self):
        command = [pgbouncer_binary(), str(self.config_path)]
        if os.geteuid() == 0:
            command[1:1] = ["-u", UNPRIVILEGED_USER]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"pgbouncer exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.show("VERSION")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"pgbouncer did not answer within {STARTUP_TIMEOUT}s:\n{self.log()}")
                time.sleep(0.1)

    def show(self, what):
        """The rows of the admin console's SHOW `what` (STATS, POOLS, CLIENTS...), as dicts.

        The console speaks only the simple query protocol, which psycopg uses for a query
        without parameters run by a client-side cursor.
        """
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.database["USER"], dbname=ADMIN_DATABASE,
                             autocommit=True, cursor_factory=psycopg.ClientCursor, connect_timeout=5) as console:
            cursor = console.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def transactions(self):
        """How many transactions PgBouncer has carried to the database so far (SHOW STATS,
        which has a row for it once a client has connected to it)."""
        rows = [row for row in self.show("STATS") if row["database"] == self.database["NAME"]]
        return sum(int(row["total_xact_count"]) for row in rows)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        """SIGINT, PgBouncer's safe shutdown: it waits for transactions in progress, then exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running_pgbouncer(database_url, *, pool_size):
    """A started PgBouncer in front of `database_url`'s database; stopped, and its directory
    removed, when the block ends."""
    directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    directory.chmod(0o755)  # for nobody, when we are root
    pooler = PgBouncer(directory, database_url, pool_size)
    for path in directory.iterdir():
        path.chmod(0o644)
    try:
        pooler.start()
        yield pooler
    finally:
        pooler.stop()
        shutil.rmtree(directory, ignore_errors=True)
