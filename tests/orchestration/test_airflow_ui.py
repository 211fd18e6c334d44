"""The operators' view: Airflow (scheduler + UI) on 127.0.0.1, a triggered run, a real browser.

Slow (a few minutes): ``.venv/bin/python -m pytest -m slow tests/orchestration/test_airflow_ui.py``.
Needs Debian's ``chromium`` and ``chromium-driver``. With ``QANCHOR_SCREENSHOTS=docs/img`` the
operator path's screenshots are copied there (``airflow-dag-docs.png``, ``airflow-grid.png``,
``evidently-drift.png``), with ``QANCHOR_ALERT_EXAMPLE=docs/drift-alert-example.html`` its alert
e-mail, and with ``QANCHOR_REJECTED_SCREENSHOT=path`` the one of a rejected candidate
(docs/img/airflow-rejected.png).
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

from .conftest import REPO, TWO_SCENARIOS, child_env

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
    cmd = [sys.executable, str(REPO / "dags" / "local.py"), "--home", str(tmp_path / "home"),
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


def test_operator_path_docs_trigger_grid_and_drift_in_evidently(
    airflow_server, tmp_path: Path
) -> None:
    """What an operator does on the first day, in a real browser: log in, read the Dag Docs,
    trigger a run from the form (its default preset is `tiny`), see it finish in the grid; then
    the drift demo of `make drift-demo` against the promoted model and its Evidently project,
    whose dashboard shows that run's drift share."""
    base, _ = airflow_server
    assert requests.get(f"{base}/api/v2/dags", timeout=10).status_code == 401  # login required
    s = api(base)
    wait_for(lambda: s.get(f"{base}/api/v2/dags/qanchor_retrain", timeout=10).ok, 240, "the DAG to be parsed")  # fmt: skip
    drv = browser()
    try:
        login(drv, base)
        read_the_dag_docs(drv, base, tmp_path / "airflow-dag-docs.png")
        switch_on(drv, s, base)
        run_id = trigger_from_the_form(drv, base, TWO_SCENARIOS)
    finally:
        drv.quit()
    run = s.get(f"{base}/api/v2/dags/qanchor_retrain/dagRuns/{run_id}", timeout=10).json()
    assert run["conf"]["preset"] == "tiny" and run["conf"]["scenarios"] == TWO_SCENARIOS
    assert wait_for_run(s, base, run_id) == "success"
    drv = browser()
    try:
        login(drv, base)
        grid = screenshot_the_grid(drv, base, run_id, tmp_path / "airflow-grid.png")
        # One mapped tune task for both scenarios (the old screenshot had one per scenario).
        assert "9 Task Instances" in grid and "cash_loan_default, churn_next_month" in grid
        summary = drift_demo(tmp_path)
        share = summary["features"]["drift_share"]
        assert summary["drift_detected"] and summary["workspace"]["runs"]
        page = screenshot_the_evidently_project(drv, summary, tmp_path / "evidently-drift.png")
    finally:
        drv.quit()
    assert f"{share:.2f}" in page  # the counter shows this run's real drift share
    if target := os.environ.get("QANCHOR_SCREENSHOTS"):
        for name in ("airflow-dag-docs.png", "airflow-grid.png", "evidently-drift.png"):
            shutil.copy(tmp_path / name, Path(target) / name)
    if target := os.environ.get("QANCHOR_ALERT_EXAMPLE"):
        write_alert_example(summary, tmp_path, Path(target))


def read_the_dag_docs(drv, base: str, shot: Path) -> None:
    """The DAG page's "Dag Docs" button opens the DAG's doc_md, which says what unpausing does."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get(f"{base}/dags/qanchor_retrain")
    wait = WebDriverWait(drv, 60)
    wait.until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Dag Docs']"))
    ).click()
    wait.until(lambda d: "Unpausing" in d.find_element(By.TAG_NAME, "body").text)
    assert "qanchor weekly retraining" in drv.find_element(By.TAG_NAME, "body").text
    unpausing = drv.find_element(By.XPATH, "//strong[text()='Unpausing']")
    drv.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", unpausing)  # on the shot
    time.sleep(1)
    assert drv.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    drv.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)


def switch_on(drv, s: requests.Session, base: str) -> None:
    """The switch next to the DAG's name unpauses it (the scheduler of this test creates no
    scheduled run: use_job_schedule is off). With SQLite, the embedded mode's database, the UI's
    write can fail with "database is locked" while the scheduler writes; the switch then flips
    back, and an operator, like this test, switches it on again."""
    from selenium.webdriver.common.by import By

    url = f"{base}/api/v2/dags/qanchor_retrain"
    for _ in range(3):
        drv.find_element(By.CSS_SELECTOR, "[data-testid='toggle-pause']").click()
        try:
            wait_for(lambda: not s.get(url, timeout=10).json()["is_paused"], 15, "unpausing", 1)
            return
        except AssertionError:
            drv.refresh()
            time.sleep(3)
    raise AssertionError("the DAG stayed paused after three clicks on its switch")


def trigger_from_the_form(drv, base: str, scenarios: list[str]) -> str:
    """Press Trigger, keep the form's defaults (preset `tiny`), list ``scenarios``; the run id."""
    from urllib.parse import unquote

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(drv, 60)
    wait.until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))
    ).click()
    box = wait.until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "textarea[placeholder='Enter each string on a new line']")))  # fmt: skip
    drv.execute_script("arguments[0].scrollIntoView()", box)
    box.click()
    box.send_keys("\n".join(scenarios))
    # The dialog's own Trigger button (the page header has one too).
    submit = [b for b in drv.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Trigger"][
        -1
    ]
    drv.execute_script("arguments[0].scrollIntoView()", submit)
    submit.click()
    wait.until(lambda d: "/runs/" in d.current_url)
    return unquote(drv.current_url.rsplit("/runs/", 1)[1].split("?")[0])


def wait_for_run(s: requests.Session, base: str, run_id: str) -> str:
    url = f"{base}/api/v2/dags/qanchor_retrain/dagRuns/{run_id}"
    return wait_for(lambda: (st := s.get(url, timeout=10).json()["state"]) in ("success", "failed") and st, 1200, "the run", 5)  # fmt: skip


def screenshot_the_grid(drv, base: str, run_id: str, shot: Path) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get(f"{base}/dags/qanchor_retrain/runs/{run_id}")
    WebDriverWait(drv, 60).until(
        lambda d: all(t in d.find_element(By.TAG_NAME, "body").text for t in ("notify", "register", "tune"))
    )  # fmt: skip
    time.sleep(3)  # let the grid finish drawing its cells
    assert drv.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    return drv.find_element(By.TAG_NAME, "body").text


def drift_demo(tmp_path: Path) -> dict:
    """`make drift-demo`'s commands on the test's scale: a shifted world, built with the served
    model's feature spec, compared with the build the promoted model was trained on."""
    import json

    env = child_env()
    cli = [sys.executable, "-m", "qanchor.cli"]
    shifted, out = tmp_path / "shifted", tmp_path / "drift" / "demo"
    for cmd in (
        [*cli, "data", "synth", "--users", "80", "--seed", "2", "--shift-after", "2026-02-01",
         "--shift-strength", "3", "--out", str(shifted)],
        [*cli, "data", "build", "--input", str(shifted), "--out", f"{shifted}-built",
         "--feature-spec-from", "served"],
        [sys.executable, str(REPO / "monitoring" / "drift_job.py"), "--reference", "served",
         "--model", "served", "--current", f"{shifted}-built", "--out", str(out),
         "--workspace", str(tmp_path / "workspace"), "--preset", "tiny"],
    ):  # fmt: skip
        subprocess.run(cmd, env=env, check=True, cwd=REPO, timeout=900)
    return json.loads((out / "summary.json").read_text())


def screenshot_the_evidently_project(drv, summary: dict, shot: Path) -> str:
    """`make monitor-ui` over the demo's workspace; the project's dashboard, once drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ws, port = summary["workspace"], free_port()
    evidently = Path(sys.executable).with_name("evidently")
    proc = subprocess.Popen([str(evidently), "ui", "--workspace", ws["path"], "--host", "127.0.0.1",
                             "--port", str(port)], env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(base, timeout=5).ok, 120, "the Evidently UI")
        drv.get(f"{base}/projects/{ws['project_id']}")
        WebDriverWait(drv, 60).until(
            lambda d: "Timestamps" in d.find_element(By.TAG_NAME, "body").text
        )
        time.sleep(3)
        assert drv.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        return drv.find_element(By.TAG_NAME, "body").text
    finally:
        stop(proc)


def write_alert_example(summary: dict, tmp_path: Path, target: Path) -> None:
    """docs/drift-alert-example.html: the alert this demo run e-mails, with example base URLs, the
    paths shown relative to the test's directory and the model store as $BENTOML_HOME."""
    from qanchor.monitoring.links import LinkSettings
    from qanchor.monitoring.mail import alert_message

    links = LinkSettings(drift_reports_url="https://drift.example.org/reports",
                         evidently_url="https://evidently.example.org",
                         airflow_url="https://airflow.example.org")  # fmt: skip
    _, html, _ = alert_message(summary, links, retrain=False, state_path=tmp_path / "drift" / "alert_state.json")  # fmt: skip
    for local, shown in ((f"{tmp_path}/", ""), (os.environ["BENTOML_HOME"], "$BENTOML_HOME")):
        html = html.replace(local, shown)
    target.write_text(html, encoding="utf-8")


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
