"""Runs every notebook in `nbs/` through nbdev's own test runner (the cells `nbdev-test` runs), one test per notebook.

Cells flagged `#|slow` or `#|notest` are skipped, as `nbdev-test` does by default."""
from pathlib import Path
import pytest
import nbdev.test as nbdev_test

NBS = Path(__file__).resolve().parent.parent/'nbs'
NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook(nb, monkeypatch):
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    ok, secs = nbdev_test.test_nb(nb, skip_flags=['notest', 'slow'], showerr=True)
    assert ok, f'{nb.name} failed (see the traceback above)'
