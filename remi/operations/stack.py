"""A team's shared services, on this machine and on 127.0.0.1 only, to try the operations end to end
(and for the tests): PostgreSQL as MLflow's run and user store, an S3 server (moto) for MLflow's
artifacts and the DVC remote, and `mlflow server --app-name basic-auth` proxying the artifacts, so
clients need no bucket keys and anonymous requests get 401.

`remi stack start` writes .stack/env (source it: it points MLflow and DVC at the stack, as a CI
user) and .stack/stack.json (ports, process ids, secrets; mode 0600); `remi stack stop` stops each
service by its process id and deletes its data: the local stack is disposable. A real deployment
sets the same variables to its own servers (docs/operations.md).
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

from remi.errors import UserError
from remi.runtime.process_identity import is_alive_here, process_tags

STACK_DIR = Path(".stack")
BUCKET = "remi"
CI_USER = "ci"
STARTUP_SECONDS = 120  # per service
AUTH_CACHE_SECONDS = 600  # how long the MLflow server trusts a checked user/password pair


class StackError(UserError):
    """A service of the local stack could not be started or reached."""


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (the services bind there only)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(tool: str, *arguments: str) -> list[str]:
    """A PostgreSQL tool (Debian keeps them off PATH, in /usr/lib/postgresql/<version>/bin); as the
    postgres user when we are root, since PostgreSQL refuses to run as root."""
    found = shutil.which(tool) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))), None)
    if found is None:
        raise StackError(f"PostgreSQL's {tool} was not found: install PostgreSQL (scripts/get_postgres.sh).")
    command = [str(found), *arguments]
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _wait_for(what: str, probe: Any, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    raise StackError(f"{what} did not answer within {STARTUP_SECONDS} s; its log ({log}) ends with:\n{tail}")


def _start_postgres(state: dict[str, Any]) -> str:
    """A fresh cluster in a directory postgres can enter; the SQLAlchemy URI prefix of its databases."""
    data = Path(tempfile.mkdtemp(prefix="remi-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    password, port = secrets.token_urlsafe(16), free_loopback_port()
    state |= {"postgres_dir": str(data), "postgres_port": port}
    pwfile = data / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    cluster = data / "cluster"
    subprocess.run(_as_postgres("initdb", "-D", str(cluster), "-U", "postgres", "-A", "scram-sha-256",
                                f"--pwfile={pwfile}", "--no-sync"), check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={data}"
    started = subprocess.run(_as_postgres("pg_ctl", "-D", str(cluster), "-l", str(data / "postgres.log"),
                                          "-o", options, "-w", "-t", str(STARTUP_SECONDS), "start"),
                             capture_output=True, text=True)
    if started.returncode != 0:
        raise StackError(f"PostgreSQL did not start: {started.stdout[-800:]} {started.stderr[-800:]}")
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password=password,
                                  dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        for database in ("mlflow", "mlflow_auth"):
            cursor.execute(f"CREATE DATABASE {database}")
    connection.close()
    return f"postgresql+psycopg2://postgres:{password}@127.0.0.1:{port}"


def _record_process(state: dict[str, Any], name: str, pid: int) -> None:
    """Its id and identity (start time): `stop` after a reboot must not signal a stranger with that id."""
    state[f"{name}_pid"], state[f"{name}_process"] = pid, process_tags(pid)


def _spawn(command: list[str], log: Path, env: dict[str, str]) -> int:
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return process.pid


def _start_s3(state: dict[str, Any], root: Path) -> str:
    port = free_loopback_port()
    endpoint = f"http://127.0.0.1:{port}"
    _record_process(state, "s3", _spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                        root / "s3.log", os.environ.copy()))
    _wait_for("The S3 server (moto)", lambda: urllib.request.urlopen(endpoint, timeout=2).status == 200,
              root / "s3.log")
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="stack",
                 aws_secret_access_key="stack").create_bucket(Bucket=BUCKET)
    return endpoint


def _basic_auth(user: str, password: str) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def _create_ci_user(url: str, admin_password: str, password: str) -> None:
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/users/create", method="POST",
                                     data=json.dumps({"username": CI_USER, "password": password}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": _basic_auth("admin", admin_password)})
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            raise StackError(f"MLflow refused to create the CI user: HTTP {response.status}")


def _start_mlflow(state: dict[str, Any], root: Path, database: str, s3: str) -> str:
    port, admin_password = free_loopback_port(), secrets.token_urlsafe(16)
    config = root / "basic_auth.ini"  # holds the database password: private, like stack.json
    _write_private(config, f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {database}/mlflow_auth\n"
                   "admin_username = admin\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                   # Without the credential cache every request re-checks the password's scrypt hash, and
                   # a stage's metric, tag and artifact calls queue behind it (BENCHMARKS.md).
                   # MLflow drops a user's cached credentials when the password changes.
                   f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n")
    # Secrets go through the environment, never the command line (which every local user can read).
    env = os.environ | {"MLFLOW_AUTH_CONFIG_PATH": str(config.resolve()), "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
                        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16), "MLFLOW_S3_ENDPOINT_URL": s3,
                        "AWS_ACCESS_KEY_ID": "stack", "AWS_SECRET_ACCESS_KEY": "stack",
                        "MLFLOW_BACKEND_STORE_URI": f"{database}/mlflow"}
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--artifacts-destination", f"s3://{BUCKET}/mlflow", "--app-name", "basic-auth"]
    _record_process(state, "mlflow", _spawn(command, root / "mlflow.log", env))
    state["admin_password"] = admin_password
    _wait_for("The MLflow server", lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200,
              root / "mlflow.log")
    return url


def start(root: Path = STACK_DIR) -> dict[str, Any]:
    """Start the three services (stopping what started if one fails); the state written to root."""
    if (root / "stack.json").exists():
        raise StackError(f"A stack is already recorded in {root}: `remi stack stop` it first.")
    root.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {}
    try:
        database = _start_postgres(state)
        _write_private(root / "stack.json", json.dumps(state))  # after each service: `stop` finds what ran
        s3 = _start_s3(state, root)
        _write_private(root / "stack.json", json.dumps(state))
        url = _start_mlflow(state, root, database, s3)
        ci_password = secrets.token_urlsafe(16)
        _create_ci_user(url, state["admin_password"], ci_password)
    except BaseException:
        _stop(state)
        # What started is stopped: no record, so `remi stack start` can be retried (the logs stay in root).
        (root / "stack.json").unlink(missing_ok=True)
        raise
    state |= {"mlflow_url": url, "s3_endpoint": s3, "ci_user": CI_USER, "ci_password": ci_password}
    _write_private(root / "stack.json", json.dumps(state, indent=2))
    _write_private(root / "env", "".join(f"export {k}={v}\n" for k, v in client_env(state).items()))
    return state


def client_env(state: dict[str, Any]) -> dict[str, str]:
    """What a client (the pipeline, DVC) needs: the server URL and the CI user; S3 keys only for DVC."""
    return {"MLFLOW_TRACKING_URI": state["mlflow_url"], "MLFLOW_TRACKING_USERNAME": state["ci_user"],
            "MLFLOW_TRACKING_PASSWORD": state["ci_password"], "AWS_ACCESS_KEY_ID": "stack",
            "AWS_SECRET_ACCESS_KEY": "stack", "REMI_STACK_S3_ENDPOINT": state["s3_endpoint"]}


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _stop_process_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _stop(state: dict[str, Any]) -> None:
    for name in ("mlflow", "s3"):
        if f"{name}_pid" in state and is_alive_here(state[f"{name}_process"]):
            _stop_process_group(state[f"{name}_pid"])
    if "postgres_dir" in state:
        cluster = Path(state["postgres_dir"]) / "cluster"
        if (cluster / "PG_VERSION").exists():  # else initdb never finished, or the cluster is gone
            stopped = subprocess.run(_as_postgres("pg_ctl", "-D", str(cluster), "-m", "fast", "-w", "stop"),
                                     capture_output=True, text=True)
            if stopped.returncode != 0 and "Is server running?" not in stopped.stderr:
                raise StackError(f"PostgreSQL did not stop ({stopped.stderr.strip()[:300]}); its data stays in "
                                 f"{state['postgres_dir']}.")
        shutil.rmtree(state["postgres_dir"], ignore_errors=True)


def stop(root: Path = STACK_DIR) -> None:
    record = root / "stack.json"
    if not record.exists():
        raise StackError(f"No stack is recorded in {root}.")
    _stop(json.loads(record.read_text()))
    shutil.rmtree(root)
