"""The committed package must equal a fresh `nbdev-export` of the notebooks (notebooks are the source of truth)."""
import filecmp, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _py_files(d): return sorted(p.relative_to(d) for p in Path(d).rglob('*.py') if '__pycache__' not in p.parts)

def test_modules_equal_fresh_export(tmp_path):
    "Export the notebooks into a copy of the project and compare every generated module with the committed one."
    work = tmp_path/'proj'
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns('.venv', '.git', '_docs', 'site', '__pycache__', '*.egg-info',
                                                               '.hypothesis', '.pytest_cache', 'data', 'runs', '.peer'))
    exe = Path(sys.executable).parent/'nbdev-export'
    subprocess.run([str(exe)], cwd=work, check=True, capture_output=True)
    committed, fresh = ROOT/'fastreid_vehicle', work/'fastreid_vehicle'
    assert _py_files(committed) == _py_files(fresh), 'module list differs from a fresh export'
    stale = [str(p) for p in _py_files(committed) if not filecmp.cmp(committed/p, fresh/p, shallow=False)]
    assert not stale, f'modules differ from a fresh nbdev-export (edit the notebooks, then export): {stale}'
