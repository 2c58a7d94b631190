"""The example notebook, run top to bottom by a real Jupyter kernel (issue #53): a tracked run
leaves the notebook's matplotlib backend alone, ``plot`` shows its curves inline, a partition
snapshot and a sweep's verdict appear."""

from __future__ import annotations

import base64

import nbformat
from nbclient import NotebookClient

from conftest import REPO


def test_the_example_notebook_runs_in_a_real_kernel(tmp_path, tracking_uri):
    notebook = nbformat.read(REPO / "examples" / "grok_mlflow_tour.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                                   # raises CellExecutionError on any error
    code = [c for c in notebook.cells if c.cell_type == "code"]
    text = lambda cell: "".join(o.get("text", "") for o in cell.outputs)   # noqa: E731
    assert "backend unchanged: True" in text(code[1])
    # plot(tracker): the figure as the cell's value, a PNG in the notebook
    (shown,) = [o for o in code[2].outputs if o.output_type == "execute_result"]
    png = base64.b64decode(shown["data"]["image/png"])
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "image/png" in next(o for o in code[3].outputs
                               if o.output_type == "execute_result")["data"]
    verdict = text(code[4]).strip().splitlines()[-1]
    assert verdict.startswith("- **") and "Wider nets have more LC" in verdict
    assert "per doubling of width" in verdict or "fraction" in verdict
    assert (tmp_path / "mlflow.db").exists() or tracking_uri.startswith("sqlite")

