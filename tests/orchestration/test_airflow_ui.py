"""The operators' view: Airflow (scheduler + UI) on 127.0.0.1, a triggered run, a real browser.

Slow (a few minutes): ``.venv/bin/python -m pytest -m slow tests/orchestration/test_airflow_ui.py``.
Needs Debian's ``chromium`` and ``chromium-driver``. With ``QANCHOR_SCREENSHOT=path`` the grid
screenshot is also copied there (how docs/img/airflow-grid.png is made), and with
``QANCHOR_REJECTED_SCREENSHOT=path`` the one of a rejected candidate (docs/img/airflow-rejected.png).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .conftest import TWO_SCENARIOS, child_env

pytestmark = pytest.mark.slow
USER, PASSWORD = "operator", "qanchor-test-password"  # a throwaway login of a temporary Airflow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except requests.RequestException:
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def airflow_server(raw_tiny: Path, tmp_path: Path):
    """Airflow as `make airflow` starts it, on a free loopback port; stopped after."""
    port = free_port()
    # Unpausing a weekly DAG would also start this week's scheduled run (small preset); the
    # scheduler's use_job_schedule=False keeps to the run the test triggers.
    env = child_env(QANCHOR_WORKDIR=str(tmp_path / "runs"), QANCHOR_DATASET=str(raw_tiny),
                    QANCHOR_AIRFLOW_USER=USER, QANCHOR_AIRFLOW_PASSWORD=PASSWORD,
                    AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False")  # fmt: skip
    log = open(tmp_path / "airflow.log", "w")  # noqa: SIM115 - closed in the teardown
    cmd = [sys.executable, "-m", "qanchor.orchestrate.airflow_local", "--home", str(tmp_path / "home"),
           "standalone", "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: requests.get(f"{base}/api/v2/monitor/health", timeout=5).ok,
            240,
            "the API server",
        )
        yield base, tmp_path / "airflow.log"
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the supervisor (it stops its components and their workers), then force."""
    proc.terminate()
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def api(base: str) -> requests.Session:
    """A REST session logged in with the simple auth manager's token endpoint."""
    r = requests.post(
        f"{base}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=10
    )
    assert r.status_code == 201, r.text
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return s


def trigger_and_wait(base: str, tolerance: float | None = None, want: str = "success") -> str:
    s = api(base)
    wait_for(
        lambda: s.get(f"{base}/api/v2/dags/qanchor_retrain", timeout=10).ok,
        240,
        "the DAG to be parsed",
    )
    assert s.patch(f"{base}/api/v2/dags/qanchor_retrain", json={"is_paused": False}, timeout=10).ok
    conf = {"preset": "tiny", "scenarios": TWO_SCENARIOS}
    if tolerance is not None:
        conf["tolerance"] = tolerance
    r = s.post(
        f"{base}/api/v2/dags/qanchor_retrain/dagRuns",
        json={"logical_date": None, "conf": conf},
        timeout=10,
    )
    assert r.ok, r.text
    run_id = r.json()["dag_run_id"]
    url = f"{base}/api/v2/dags/qanchor_retrain/dagRuns/{run_id}"
    state = wait_for(lambda: (st := s.get(url, timeout=10).json()["state"]) in ("success", "failed") and st, 1200, "the run", 5)  # fmt: skip
    assert state == want, f"run {run_id} ended {state}"
    return run_id


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        if os.environ.get("CI"):
            pytest.fail(
                "chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"
            )
        pytest.skip(
            "chromium/chromium-driver not installed: apt-get install -y chromium chromium-driver"
        )
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--window-size=1600,1000"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def login(drv, base: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get(f"{base}/")
    wait = WebDriverWait(drv, 60)
    wait.until(EC.presence_of_element_located((By.NAME, "username"))).send_keys(USER)
    drv.find_element(By.NAME, "password").send_keys(PASSWORD)
    drv.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)


def test_login_and_screenshot_the_grid_after_a_successful_run(
    airflow_server, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = airflow_server
    assert requests.get(f"{base}/api/v2/dags", timeout=10).status_code == 401  # login required
    run_id = trigger_and_wait(base)
    drv = browser()
    try:
        login(drv, base)
        drv.get(f"{base}/dags/qanchor_retrain/runs/{run_id}")
        wait = WebDriverWait(drv, 60)
        wait.until(
            lambda d: all(
                t in d.find_element(By.TAG_NAME, "body").text
                for t in ("notify", "register", "tune")
            )
        )
        time.sleep(3)  # let the grid finish drawing its cells
        shot = tmp_path / "airflow-grid.png"
        assert drv.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        body = drv.find_element(By.TAG_NAME, "body").text
    finally:
        drv.quit()
    assert "qanchor_retrain" in body
    if target := os.environ.get("QANCHOR_SCREENSHOT"):
        shutil.copy(shot, target)


def test_a_rejected_candidate_is_a_failed_run_with_the_reason(
    airflow_server, tmp_path: Path
) -> None:
    """The first run is promoted; a second that must beat it by a whole AUC point (tolerance -1)
    is rejected: its run fails at `outcome`, whose log holds the gate's reason."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = airflow_server
    trigger_and_wait(base)
    run_id = trigger_and_wait(base, tolerance=-1.0, want="failed")
    s = api(base)
    tis = s.get(f"{base}/api/v2/dags/qanchor_retrain/dagRuns/{run_id}/taskInstances", timeout=10)
    states = {t["task_id"]: t["state"] for t in tis.json()["task_instances"]}
    assert states["gate"] == "success" and states["register"] == "skipped"
    assert states["notify"] == "success" and states["outcome"] == "failed"
    log = s.get(f"{base}/api/v2/dags/qanchor_retrain/dagRuns/{run_id}/taskInstances/outcome/logs/1",
                headers={"Accept": "application/json"}, timeout=10).text  # fmt: skip
    assert "candidate not promoted: rejected: mean AUC" in log
    drv = browser()
    try:
        login(drv, base)
        drv.get(f"{base}/dags/qanchor_retrain/runs/{run_id}")
        WebDriverWait(drv, 60).until(
            lambda d: "outcome" in d.find_element(By.TAG_NAME, "body").text
        )
        time.sleep(3)
        shot = tmp_path / "airflow-rejected.png"
        assert drv.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        drv.quit()
    if target := os.environ.get("QANCHOR_REJECTED_SCREENSHOT"):
        shutil.copy(shot, target)
