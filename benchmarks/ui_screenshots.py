"""Screenshots of a sweep in the real MLflow UI, as a user opens it (docs/ui.md).

Runs a small digits sweep (3 widths; about a minute on 2 CPU cores) into a temporary SQLite
store, starts a real ``mlflow ui`` on 127.0.0.1, and photographs it with headless Chromium
(Debian: ``apt-get install chromium``):

- ``ui_experiment.png``: the sweep's experiment, as it first opens (its description links the
  comparison);
- ``ui_compare_charts.png``: the comparison link: every trial's curves overlaid in the chart view;
- ``ui_compare_table.png``: the same view as a table (swept settings and final metrics as columns).

With ``--store URI --run RUN_ID`` one run's page is photographed (``ui_run.png``) and its
charts (``ui_run_charts.png``: the partition snapshots, logged with ``log_image(key=, step=)``, as
MLflow's image chart with its step slider). The charts page draws its sections lazily, in
alphabetical order, so the browser is driven over the DevTools protocol (``aiohttp``'s
websocket client, a dependency of Ray): the page's chart search gets ``--charts-search``
(default ``partition``) typed in and the last chart of that title (the image chart) is opened
full screen, as a user would, before the photograph.

With ``--store URI --parent RUN_ID`` nothing is run: an existing sweep (e.g. one of
``benchmarks/reproduce_sweep.py``'s) is photographed instead, with its parent run's page too
(``ui_parent.png``: the description with the verdicts on the paper's claims), under ``--prefix``.

Usage::

    python benchmarks/ui_screenshots.py [--out docs] [--port 5077] [--spec SPEC.yaml]
    python benchmarks/ui_screenshots.py --store sqlite:///mlflow.db --parent RUN_ID --prefix depth_
    python benchmarks/ui_screenshots.py --store sqlite:///mlflow.db --run RUN_ID
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
SPEC = """name: ui_demo
base: {steps: 600, depth: 2, lc_samples: 100, eval_every: 50, partition_every: 0}
grid:
  width: [20, 50, 200]
resources: {cpu: 1}
max_concurrent: 2
"""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--hide-scrollbars", "--mute-audio"]


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    sys.exit("ui_screenshots: no chromium on PATH (Debian/Ubuntu: apt-get install chromium)")


def _wait_for(url: str, timeout_s: float = 60) -> None:
    end = time.time() + timeout_s
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"ui_screenshots: mlflow ui did not answer at {url} within {timeout_s:.0f} s")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def screenshot(browser: str, url: str, path: Path, size: str = "1800,1100",
               budget_ms: int = 40000) -> None:
    """One page, after ``budget_ms`` of (virtual) time for its charts to load."""
    with tempfile.TemporaryDirectory() as profile:   # a first visit, as a new user's
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        f"--window-size={size}", f"--virtual-time-budget={budget_ms}",
                        f"--screenshot={path}", url], check=True, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"  {path}  <- {url}")


_TYPE_IN_SEARCH = """
(() => {
  const box = [...document.querySelectorAll('input')].find(
      i => /search/i.test(i.placeholder || '') || /search/i.test(i.getAttribute('aria-label') || ''));
  if (!box) return 'no search box';
  const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
  set.call(box, %s);
  box.dispatchEvent(new Event('input', {bubbles: true}));
  return box.placeholder || 'search';
})()
"""

# the last chart titled exactly as the search (MLflow's image chart for ``log_image(key=...)``
# comes after the metric sections), opened full screen: its image and its step slider
_OPEN_CHART = """
(() => {
  const titles = [...document.querySelectorAll('h4')].filter(e => e.textContent.trim() === %s);
  if (!titles.length) return 'no chart titled so';
  const card = titles[titles.length - 1].closest('[data-testid="experiment-view-compare-runs-card"]');
  const full = card && card.querySelector('button[data-component-id="fullscreen_button_chartcard"]');
  if (!full) return 'no full-screen button';
  full.click();
  return 'opened';
})()
"""


async def _drive(port: int, url: str, path: Path, search: str, wait_s: float) -> str:
    """Open ``url`` in the running browser, type ``search`` into the page's search box, wait,
    open the last chart titled ``search`` full screen, photograph the viewport; returns the
    search box's placeholder (or why it was not found)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as answer:
                    pages = [p for p in await answer.json() if p.get("type") == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 10**6))

            async def call(method: str, **params) -> dict:
                n = next(ids)
                await ws.send_str(json.dumps({"id": n, "method": method, "params": params}))
                async for message in ws:
                    data = json.loads(message.data)
                    if data.get("id") == n:
                        return data.get("result", {})
                return {}

            await call("Page.enable")
            await call("Page.navigate", url=url)
            await asyncio.sleep(wait_s)
            found = await call("Runtime.evaluate", expression=_TYPE_IN_SEARCH % json.dumps(search),
                               returnByValue=True)
            await asyncio.sleep(wait_s)
            await call("Runtime.evaluate", expression=_OPEN_CHART % json.dumps(search),
                       returnByValue=True)
            await asyncio.sleep(wait_s)
            shot = await call("Page.captureScreenshot", format="png")
            path.write_bytes(base64.b64decode(shot["data"]))
            return str(found.get("result", {}).get("value"))


def screenshot_searched(browser: str, url: str, path: Path, search: str,
                        size: str = "1800,1400", wait_s: float = 12.0, port: int = 9233) -> None:
    """``url`` with ``search`` typed into its search box (a first visit, as a new user's)."""
    with tempfile.TemporaryDirectory() as profile:
        chrome = subprocess.Popen([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                   f"--window-size={size}", f"--remote-debugging-port={port}",
                                   "about:blank"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            found = asyncio.run(_drive(port, url, path, search, wait_s))
        finally:
            chrome.terminate()
            chrome.wait(30)
    print(f"  {path}  <- {url} (searched {search!r} in: {found})")


def _run_sweep(spec: str | None, tmp: str) -> tuple[str, str, None]:
    """Run the demo sweep (or ``spec``) into a store under ``tmp``: (store, view route, None)."""
    spec = spec and os.path.abspath(spec)
    if not spec:
        spec = os.path.join(tmp, "ui_demo.yaml")
        Path(spec).write_text(SPEC)
    store = f"sqlite:///{tmp}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "grok_mlflow", "sweep", spec], cwd=tmp,
                          env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"ui_screenshots: the sweep failed:\n{done.stderr[-2000:]}")
    link = next(line.split("then open ", 1)[1] for line in done.stderr.splitlines()
                if "then open " in line)
    print(f"sweep: {time.time() - start:.0f} s; {link}")
    return store, link.split("/#/", 1)[1], None                  # experiments/ID/runs?...


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs"), help="folder for the PNGs")
    parser.add_argument("--port", type=int, default=5077)
    parser.add_argument("--spec", help="a sweep spec to run instead of the built-in one")
    parser.add_argument("--store", help="an existing tracking store (with --parent)")
    parser.add_argument("--parent", help="an existing sweep's parent run id (with --store)")
    parser.add_argument("--run", help="one run's page and charts instead (with --store)")
    parser.add_argument("--charts-size", default="1400,1300",
                        help="window of the run's charts page (width,height in pixels)")
    parser.add_argument("--charts-search", default="partition",
                        help="typed into the run's chart search before the photograph")
    parser.add_argument("--prefix", default="", help="file name prefix of the PNGs")
    args = parser.parse_args()
    if bool(args.store) != bool(args.parent or args.run):
        sys.exit("ui_screenshots: --store goes with --parent or --run")
    if args.run:
        return photograph_run(args)
    browser = _browser()
    if not _free(args.port):
        sys.exit(f"ui_screenshots: port {args.port} is in use; pass --port")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.parent:
            store, parent = args.store, args.parent
            from mlflow.tracking import MlflowClient
            experiment = MlflowClient(store).get_run(parent).info.experiment_id
            route = (f"experiments/{experiment}/runs?workflowType=machine_learning"
                     f"&compareRunsMode=CHART&viewStateShareKey={parent}")
        else:
            store, route, parent = _run_sweep(args.spec, tmp)
            experiment = route.split("/")[1]
        env = {**os.environ, "MLFLOW_TRACKING_URI": store}
        base = f"http://127.0.0.1:{args.port}/"
        ui = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store,
                               "--host", "127.0.0.1", "--port", str(args.port)], cwd=tmp,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
        def name(stem: str) -> Path:
            return out / f"{args.prefix}{stem}.png"

        try:
            _wait_for(base)
            screenshot(browser, f"{base}#/experiments/{experiment}?workflowType=machine_learning",
                       name("ui_experiment"), budget_ms=15000)
            if args.parent:
                screenshot(browser, f"{base}#/experiments/{experiment}/runs/{parent}"
                                f"?workflowType=machine_learning",
                           name("ui_parent"), size="1800,1400", budget_ms=15000)
            screenshot(browser, f"{base}#/{route}", name("ui_compare_charts"))
            screenshot(browser, f"{base}#/{route.replace('CHART', 'TABLE')}",
                       name("ui_compare_table"), budget_ms=15000)
        finally:
            os.killpg(ui.pid, 15)
            ui.wait(30)
    return 0


def photograph_run(args: argparse.Namespace) -> int:
    """One run's page and its model-metrics charts (the image slider over the partition
    snapshots) in a real ``mlflow ui``."""
    from mlflow.tracking import MlflowClient

    browser = _browser()
    if not _free(args.port):
        sys.exit(f"ui_screenshots: port {args.port} is in use; pass --port")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    experiment = MlflowClient(args.store).get_run(args.run).info.experiment_id
    base = f"http://127.0.0.1:{args.port}/"
    with tempfile.TemporaryDirectory() as tmp:
        ui = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
                               args.store, "--host", "127.0.0.1", "--port", str(args.port)],
                              cwd=tmp, env={**os.environ, "MLFLOW_TRACKING_URI": args.store},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
        try:
            _wait_for(base)
            page = f"{base}#/experiments/{experiment}/runs/{args.run}"
            screenshot(browser, page, out / f"{args.prefix}ui_run.png", size="1800,1400",
                       budget_ms=15000)
            # the sections load lazily, alphabetically: search for the partition images (the
            # slider), as a user would
            screenshot_searched(browser, f"{page}/model-metrics",
                                out / f"{args.prefix}ui_run_charts.png", args.charts_search,
                                size=args.charts_size)
        finally:
            os.killpg(ui.pid, 15)
            ui.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
