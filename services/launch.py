"""Start the service on loopback (wraps ``bentoml serve services.service:QAnchor``, i.e.
:class:`qanchor.serving.service.EmbeddingService`): ``make serve`` and the tests' and benchmark's real server.

    python -m services.launch --port 3000          # what `make serve` runs (from the repository)

``main`` makes sure there is an API key (``QANCHOR_API_KEY``/``QANCHOR_API_KEY_FILE``, else one
generated into ``$BENTOML_HOME/api_key``, readable by the owner only), a promoted model and a
loaded feature store (by default the build of the run that produced the promoted model), prints
an example ``curl`` that reads the key from its file (the key itself is never printed), then
becomes ``bentoml serve`` on 127.0.0.1. :class:`ServerProcess` runs the same command as a child
process and stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from qanchor.errors import QAnchorError
from qanchor.serving.auth import KEY_ENV, KEY_FILE_ENV

SERVICE = "services.service:QAnchor"
REPO = Path(__file__).resolve().parents[1]  # the directory holding services/ and feature_repo/


def serve_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]


def ensure_key(environ: dict[str, str], key_file: Path) -> str:
    """Point the environment at a key; returns the shell expression that reads it for curl."""
    if environ.get(KEY_ENV):
        return f"${KEY_ENV}"
    path = Path(environ.get(KEY_FILE_ENV) or key_file)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    environ[KEY_FILE_ENV] = str(path.resolve())
    return f"$(cat {path})"


def feature_data(environ: Mapping[str, str], workdir: Path) -> Path:
    """The built dataset to serve: ``QANCHOR_FEATURE_DATA``, else the promoted model's run."""
    from qanchor import registry

    if environ.get("QANCHOR_FEATURE_DATA"):
        return Path(environ["QANCHOR_FEATURE_DATA"])
    tag = environ.get("QANCHOR_MODEL_TAG")
    version = registry.get(tag) if tag else registry.promoted()
    if version is None:
        raise QAnchorError(
            "no promoted model yet: run `make run` (or `make run PRESET=tiny`) first"
        )
    built = workdir / version.labels.get("run", "?") / "built"
    if not (built / "manifest.json").is_file():
        raise QAnchorError(f"{version.tag}: its build {built} is gone; set QANCHOR_FEATURE_DATA "
                           "to a built dataset")  # fmt: skip
    return built


def prepare_store(data: Path, repo: str) -> str:
    """Load the online store if it is not yet (a run applies and materialises it); a user id."""
    import pandas as pd

    from qanchor.features import FeatureStoreConfig, sync

    cfg = FeatureStoreConfig(data=str(data), repo=repo)
    if not (cfg.state_dir / "online_store.db").is_file():
        sync(cfg)
    return str(pd.read_parquet(data / "users.parquet", columns=["user_id"])["user_id"].iloc[0])


def example(port: int, key: str, user: str, scenario: str) -> str:
    return (f"curl -s http://127.0.0.1:{port}/embed -H \"Authorization: Bearer {key}\" "
            f"-H 'Content-Type: application/json' -d '{{\"user_id\": \"{user}\", \"scenario\": \"{scenario}\"}}'")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Check the model, the key and the store, print how to call the service, then serve."""
    from qanchor import registry

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--workdir", default=os.environ.get("QANCHOR_WORKDIR", "runs/airflow"))
    args = p.parse_args(argv)
    env = dict(os.environ)
    try:
        data = feature_data(env, Path(args.workdir))
        model = registry.load_promoted(tag=env.get("QANCHOR_MODEL_TAG"))
        env["QANCHOR_FEATURE_DATA"] = str(data.resolve())
        env.setdefault("QANCHOR_FEATURE_REPO", str(REPO / "feature_repo"))
        user = prepare_store(data, env["QANCHOR_FEATURE_REPO"])
    except QAnchorError as exc:
        print(f"make serve: {exc}", file=sys.stderr)
        return 2
    key = ensure_key(env, registry.bentoml_home() / "api_key")
    scenario = next((d.name for d in sorted((model / "scenarios").glob("*/"))), "any_scenario")
    print(f"Serving {model} with users from {data} on http://127.0.0.1:{args.port}\n"
          f"The API key is in {env.get(KEY_FILE_ENV, '$' + KEY_ENV)}. Try:\n  "
          f"{example(args.port, key, user, scenario)}\n", flush=True)  # fmt: skip
    os.chdir(REPO)
    os.execve(sys.executable, serve_command(args.port), env)
    return 0  # not reached


class ServerProcess:
    """``bentoml serve`` as a child process on 127.0.0.1, in its own process group.

    Example::

        with ServerProcess(port, env) as server:
            server.wait_ready()
            ...
    """

    def __init__(self, port: int, env: Mapping[str, str], log: Path | None = None) -> None:
        self.port, self.env, self.log = port, dict(env), log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
        out = open(self.log, "wb") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(serve_command(self.port), cwd=REPO, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Poll /readyz until the service answers 200 (the model and store are loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"bentoml serve exited with {self.proc.returncode}; see {self.log}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"bentoml serve not ready after {timeout:.0f} s; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        """SIGTERM the server's process group (BentoML's arbiter and its workers), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):  # workers that outlived their arbiter
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


if __name__ == "__main__":
    sys.exit(main())
