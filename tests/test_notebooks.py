"""Runs every notebook in `nbs/` as its page shows it, one test per notebook (`docs/build_docs.py --run-examples`,
`run_examples`): in a fresh shell, from the page's prelude (`from fastreid_vehicle.all import *`, shown at the top of
the page), each shown example cell in order. What the page does not show (hidden cells, check cells, the check
statements of examples) still runs in place, apart, so the checks keep running but a shown cell that needs a hidden
definition fails. Exported cells are not re-run: the prelude imports the module (`tests/test_export.py` checks that the package
equals a fresh `nbdev-export`).

Cells flagged `#|slow` or `#|notest` are skipped, as `nbdev-test` does by default. Each notebook runs in a process of
its own: a notebook's code (classes, `@patch`es on fastai's `Learner`) would otherwise leak into the other tests of the
same pytest worker."""
import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
NOTEBOOKS = sorted(p for p in [*NBS.glob('*.ipynb'), *NBS.glob('tutorials/*.ipynb')] if not p.name.startswith('_'))

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(NBS)) for p in NOTEBOOKS])
def test_notebook(nb):
    r = subprocess.run([sys.executable, str(ROOT/'docs'/'build_docs.py'), '--run-examples', str(nb)],
                       env={**os.environ, 'MPLBACKEND': 'Agg'}, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f'{nb.name} failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}'
