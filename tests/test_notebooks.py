"""Runs every notebook in `nbs/` through nbdev's own test runner (the cells `nbdev-test` runs), one test per notebook.

Cells flagged `#|slow` or `#|notest` are skipped, as `nbdev-test` does by default. Each notebook runs in a process of
its own: a notebook re-executes its module's cells (classes, `@patch`es on fastai's `Learner`) in the runner's
namespace, which would otherwise leak into the other tests of the same pytest worker."""
import os, subprocess, sys
from pathlib import Path
import pytest

NBS = Path(__file__).resolve().parent.parent/'nbs'
NOTEBOOKS = sorted(p for p in [*NBS.glob('*.ipynb'), *NBS.glob('tutorials/*.ipynb')] if not p.name.startswith('_'))
RUN = ("import sys, nbdev.test as t; ok, secs = t.test_nb(sys.argv[1], skip_flags=['notest', 'slow'], showerr=True); "
       "sys.exit(0 if ok else 1)")

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(NBS)) for p in NOTEBOOKS])
def test_notebook(nb):
    r = subprocess.run([sys.executable, '-c', RUN, str(nb)], env={**os.environ, 'MPLBACKEND': 'Agg'},
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f'{nb.name} failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}'
