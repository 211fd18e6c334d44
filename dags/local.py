"""Airflow embedded on this machine: SQLite, the repository's dags/, everything on 127.0.0.1.

    python dags/local.py test --dataset data/synthetic --preset tiny  # make run
    python dags/local.py standalone                                  # make airflow

``test`` runs one ``dag.test()`` of ``qanchor_retrain`` in this process (no server, no
scheduler) and prints where metrics.json and the report are. ``standalone`` starts what
``airflow standalone`` does (scheduler, DAG processor, triggerer, API server/UI) bound to
127.0.0.1, with few worker processes and login required (simple auth manager: user ``QANCHOR_AIRFLOW_USER``, default ``admin``;
password ``QANCHOR_AIRFLOW_PASSWORD`` or generated once into ``$AIRFLOW_HOME/passwords.json``).
Airflow reads its settings when it is imported, so both set the environment first and import
Airflow only afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from qanchor.errors import QAnchorError
from qanchor.orchestrate.console import SAY, RunConsole

DAGS = Path(__file__).resolve().parent  # this shell lives beside the DAGs it runs
REPO = DAGS.parent
DAG_ID = "qanchor_retrain"


def default_home() -> Path:
    """``AIRFLOW_HOME`` if set, else ``.airflow`` in the repository (kept out of git)."""
    return Path(os.environ.get("AIRFLOW_HOME") or REPO / ".airflow").expanduser().resolve()


def ensure_password(home: Path, user: str) -> str:
    """The UI password of ``user``: from the environment, else generated once and kept (0600)."""
    path = home / "passwords.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    password = os.environ.get("QANCHOR_AIRFLOW_PASSWORD") or stored.get(user) or secrets.token_urlsafe(12)  # fmt: skip
    if stored.get(user) != password:
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**stored, user: password}) + "\n")
        path.chmod(0o600)
    return password


def embedded_env(home: Path, dags: Path, port: int = 8080, user: str = "admin") -> dict[str, str]:
    """Airflow settings of the embedded mode (merged over the caller's environment)."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Two cores: a few task processes at a time, one API worker, one parsing process.
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__API__HOST": "127.0.0.1",  # the API server binds 0.0.0.0 unless told otherwise
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "QANCHOR_WORKDIR": os.environ.get("QANCHOR_WORKDIR") or str(home / "qanchor-runs"),
        # The DAG's default preset: what a scheduled run (unpausing starts one) trains with here.
        "QANCHOR_PRESET": os.environ.get("QANCHOR_PRESET") or "tiny",
    }  # fmt: skip


def prepare(home: Path, dags: Path, port: int = 8080) -> dict[str, str]:
    """Set the embedded environment in this process, create the login and migrate the database."""
    user = os.environ.get("QANCHOR_AIRFLOW_USER", "admin")
    env = embedded_env(home, dags, port, user)
    os.environ.update(env)
    # Anything that starts `airflow ...` from PATH (e.g. `airflow standalone`) gets this environment's.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    ensure_password(home, user)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   env=os.environ.copy(), stdout=subprocess.DEVNULL)  # fmt: skip
    return env


def dag_test(conf: dict, home: Path, dags: Path) -> dict:
    """One ``dag.test()`` run of the retraining DAG with ``conf`` as params; returns its summary."""
    prepare(home, dags)
    from airflow.dag_processing.dagbag import DagBag

    from qanchor.errors import QAnchorError
    from qanchor.orchestrate.outcome import summarize
    from qanchor.orchestrate.rundir import run_dir, workdir

    bag = DagBag(dag_folder=str(dags))
    if bag.import_errors or DAG_ID not in bag.dags:
        raise QAnchorError(f"cannot load {DAG_ID} from {dags}: {bag.import_errors}")
    dag_run = bag.dags[DAG_ID].test(run_conf=conf)
    state = str(getattr(dag_run.state, "value", dag_run.state))
    run = run_dir(workdir(), dag_run.run_id)
    summary = {**summarize(run), "state": state, "run_id": dag_run.run_id}
    if state != "success":
        raise QAnchorError(f"{DAG_ID} run {dag_run.run_id} ended {state}; see the task logs above")
    return summary


# What `airflow standalone` runs, minus the task-log servers: those bind every interface (no host
# setting), and with everything on one machine the API server reads task logs from local files.
COMPONENTS = (
    ("scheduler", "--skip-serve-logs"),
    ("dag-processor",),
    ("triggerer", "--skip-serve-logs"),
    ("api-server",),
)


def wait_healthy(
    url: str, alive: Callable[[], bool], timeout: float = 600.0, every: float = 1.0
) -> bool:
    """Poll Airflow's health endpoint until the database and scheduler are healthy.

    The banner is printed only then: the API server takes a minute or more to answer on a
    small machine, and a link that does not open yet sends people looking for an error.

    Returns:
        True when healthy; False once ``alive()`` is false (a component exited, or we are
        stopping) or after ``timeout`` seconds.
    """
    import json
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (our own localhost URL)
                health = json.load(resp)
            parts = (health.get("metadatabase") or {}, health.get("scheduler") or {})
            if all(part.get("status") == "healthy" for part in parts):
                return True
        except (OSError, ValueError, urllib.error.URLError):
            pass  # not listening yet, or answering with a page that is not the health JSON
        time.sleep(every)
    return False


def standalone(home: Path, dags: Path, port: int) -> int:
    """Run scheduler, DAG processor, triggerer and API server/UI until SIGINT or SIGTERM."""
    import signal
    import time

    prepare(home, dags, port)
    user = os.environ.get("QANCHOR_AIRFLOW_USER", "admin")
    procs = [subprocess.Popen([sys.executable, "-m", "airflow", *cmd], env=os.environ.copy())
             for cmd in COMPONENTS]  # fmt: skip
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))

    def running() -> bool:
        return not stopping and all(p.poll() is None for p in procs)

    print(f"Airflow starting on 127.0.0.1:{port} (the UI answers in about a minute)...", flush=True)
    if wait_healthy(f"http://127.0.0.1:{port}/api/v2/monitor/health", running):
        print(f"Airflow UI: http://127.0.0.1:{port}  (user {user!r}, password in {home / 'passwords.json'})", flush=True)  # fmt: skip
    elif running():
        print("Airflow is not healthy yet; see the components' output above", flush=True)
    while running():
        time.sleep(0.5)
    for p in procs:
        if p.poll() is None:
            p.terminate()  # each component shuts down its own workers on SIGTERM
    deadline = time.monotonic() + 60
    for p in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    failed = [c[0] for c, p in zip(COMPONENTS, procs, strict=True) if p.returncode not in (0, -15)]
    return 1 if failed and not stopping else 0


def main(argv: list[str] | None = None) -> int:
    """Command line of the embedded Airflow (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python dags/local.py")
    p.add_argument("--home", type=Path, default=None, help="AIRFLOW_HOME (default: .airflow)")
    p.add_argument("--dags", type=Path, default=DAGS, help="DAGs folder")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("test", help=f"one dag.test() run of {DAG_ID}")
    t.add_argument("--dataset", required=True, help="dataset directory in the input contract")
    t.add_argument("--preset", default="small", choices=["tiny", "small", "paper"])
    t.add_argument("--scenarios", default="", help="comma-separated scenarios (default: all)")
    t.add_argument("--tolerance", type=float, default=0.01, help="gate tolerance in mean AUC")
    t.add_argument("-v", "--verbose", action="store_true",
                   help="print the whole Airflow/KFP log (default: a line per stage and progress "
                        "bars; the whole log goes to a file)")  # fmt: skip
    t.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)  # the filtered child
    s = sub.add_parser("standalone", help="scheduler and UI on 127.0.0.1 (login required)")
    s.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    args = p.parse_args(argv)
    home = (args.home or default_home()).resolve()
    if args.command == "standalone":
        return standalone(home, args.dags.resolve(), args.port)
    if not (args.verbose or args.raw):
        return filtered([a for a in (argv if argv is not None else sys.argv[1:])] + ["--raw"])
    conf = {"dataset": str(Path(args.dataset).resolve()), "preset": args.preset,
            "scenarios": [s for s in args.scenarios.split(",") if s], "tolerance": args.tolerance}  # fmt: skip
    say = SAY if args.raw else ""
    try:
        summary = dag_test(conf, home, args.dags.resolve())
    except QAnchorError as exc:
        print(f"{say}qanchor: error: {exc}", flush=True)
        return 2
    print(f"{say}{DAG_ID} {summary['run_id']}: {summary['state']}")
    print(f"{say}metrics: {summary['metrics']}")
    print(f"{say}report:  {summary['report']}", flush=True)
    return 0


def filtered(argv: list[str]) -> int:
    """Run ``test`` in a child process and show its output through :class:`RunConsole`."""
    import time

    from qanchor.orchestrate.rundir import workdir

    log = workdir() / "logs" / f"dag-test-{time.strftime('%Y%m%d-%H%M%S')}.log"
    console = RunConsole(log)
    # Universal newlines: tqdm's carriage-return redraws arrive as lines of their own.
    # Unbuffered: a child writing into a pipe would otherwise hand over lines in 8 KB bursts.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if console.tty:  # the console redraws the bars in place: let them move (qanchor.progress)
        env.setdefault("TQDM_MININTERVAL", "0.5")
    with subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *argv],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          encoding="utf-8", errors="replace", env=env) as child:  # fmt: skip
        assert child.stdout is not None
        for line in child.stdout:
            console.feed(line.rstrip("\n"))
    console.close(ok=child.returncode == 0)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
