"""Nothing trained is lost: a CLI run killed with SIGKILL after an epoch resumes (`--resume`) to the same result as an
uninterrupted run; run folders are recorded and not mixed; the learner export is atomic."""
import json, os, signal, stat, subprocess, sys, time
from pathlib import Path
import pandas as pd, pytest, torch
from fastai.learner import Learner
from safetensors.torch import load_file
import fastreid_vehicle.pipeline as cli
from fastreid_vehicle.pipeline import train
from fastreid_vehicle.runs import read_checkpoint, read_run, CHECKPOINT
from fastreid_vehicle.synthetic import synthesize_veri
from fastreid_vehicle.files import current_umask

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 2
RESUME_TOL = 1e-6   # measured: the resumed run equals the uninterrupted one exactly (max |diff| 0.0), see the report

@pytest.fixture(scope='module')
def root(tmp_path_factory): return synthesize_veri(tmp_path_factory.mktemp('d')/'veri', 'tiny', seed=0, n_workers=1)

def _cmd(root, out, *extra):
    args = ['train', '--preset', 'tiny', '--root', str(root), '--out', str(out), '--size', '64', '--P', '4', '--K', '4',
            '--epochs', str(EPOCHS), '--threads', '1', '--no-progress', '--seed', '0', *extra]
    return [sys.executable, '-m', 'fastreid_vehicle.cli', *args]

ENV = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}

def _run(cmd):
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r

@pytest.mark.slow   # about a minute on a quiet 2-core machine (two CLI processes)
def test_sigkill_then_resume_gives_the_uninterrupted_result(root, tmp_path):
    ref, out = tmp_path/'ref', tmp_path/'killed'
    train(preset='tiny', root=root, out=ref, size=64, P=4, K=4, epochs=EPOCHS, progress=False, threads=1, seed=0)
    proc = subprocess.Popen(_cmd(root, out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while not (out/CHECKPOINT).exists():                 # the first epoch is complete
            assert proc.poll() is None and time.time() - t0 < 300, 'the run ended before its first checkpoint'
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL); proc.wait()
    finally:
        if proc.poll() is None: proc.kill()
    assert not (out/'metrics.json').exists() and read_run(out)['status'] == 'running'
    done = read_checkpoint(out/CHECKPOINT)['epoch']
    assert done < EPOCHS - 1
    r = _run(_cmd(root, out, '--resume'))
    assert f'resuming {out} after epoch {done + 1}' in r.stderr   # a note of the work: stderr
    a, b = json.loads((ref/'metrics.json').read_text()), json.loads((out/'metrics.json').read_text())
    wa, wb = load_file(str(ref/'model.safetensors')), load_file(str(out/'model.safetensors'))
    diff = dict(weights=max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa),
                **{k: abs(a[k] - b[k]) for k in ('rank1', 'rank5', 'mAP', 'mINP')})
    print(f'resumed after epoch {done} vs uninterrupted, max |difference|:', diff)   # the measured tolerance
    assert all(v <= RESUME_TOL for v in diff.values()), diff
    assert not list(out.glob('.*.tmp-*'))                            # the killed writer's temporary files are gone
    ha, hb = pd.read_csv(ref/'history.csv'), pd.read_csv(out/'history.csv')
    assert hb.epoch.tolist() == list(range(EPOCHS))                  # one row per epoch, one header
    cols = [c for c in ha.columns if c != 'time']                    # train_loss too: the smoothed loss is resumed
    pd.testing.assert_frame_equal(ha[cols], hb[cols], atol=RESUME_TOL, rtol=0)
    rec = read_run(out)
    assert rec['status'] == 'complete' and len(rec['resumed']) == 1 and rec['config']['epochs'] == EPOCHS
    assert {'torch', 'fastai', 'python'} <= set(rec['versions']) and rec['seed'] == 0

def test_resume_refuses_another_config(root, tmp_path):
    out = tmp_path/'run'
    kw = dict(preset='tiny', root=root, out=out, size=64, P=4, K=4, epochs=1, progress=False, threads=1)
    train(**kw)
    with pytest.raises(FileExistsError, match='holds the outputs of a run'): train(**kw)
    with pytest.raises(ValueError, match='lr: recorded 0.003, now 0.01'): train(**{**kw, 'lr': 1e-2}, resume=True)
    res = train(**{**kw, 'lr': 1e-2}, overwrite=True)
    assert read_run(out)['config']['lr'] == 1e-2 and res['settings']['lr'] == 1e-2
    usual = 0o666 & ~current_umask()                                 # outputs written through temporary names
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {p.name: usual for p in out.iterdir()}

def test_kill_during_export_leaves_no_broken_learner(root, tmp_path, monkeypatch):
    save = torch.save
    def killed(obj, f, *args, **kwargs):
        if isinstance(obj, Learner):
            Path(f).write_bytes(b''); raise KeyboardInterrupt('killed during export')
        return save(obj, f, *args, **kwargs)
    monkeypatch.setattr(torch, 'save', killed)
    out = tmp_path/'run'
    with pytest.raises(KeyboardInterrupt):
        train(preset='tiny', root=root, out=out, size=64, P=4, K=4, epochs=1, progress=False, threads=1)
    assert (out/'model.safetensors').exists() and (out/CHECKPOINT).exists()
    assert not (out/'learner.pkl').exists() and not list(out.glob('.*tmp*'))


# ---------------------------------------------------------------- checks moved from nbs/16_runs.ipynb, run in the module's namespace
def test_runs_notebook_examples(tmp_path):
    from fastcore.test import test_eq, test_fail; import tempfile, subprocess, sys, random; import numpy as np, torch; from pathlib import Path; from fastai.test_utils import synth_learner; from fastai.callback.schedule import fit_one_cycle; from fastai.basics import set_seed, Callback, CancelFitException
    import fastreid_vehicle.runs as _M
    g = globals(); g.update({k: v for k, v in vars(_M).items() if not k.startswith('__')})
    s = get_rng_states()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_states(s)
    test_eq((random.random(), np.random.rand(), torch.rand(1).item()), a)
    class Noisy(Callback):
        "Input noise drawn from torch, numpy and Python generators"
        def before_batch(self):
            if self.training: self.learn.xb = (self.xb[0] + torch.randn_like(self.xb[0]) * np.random.rand() * random.random(),)

    class Kill(Callback):
        order = EpochCheckpoint.order + 1
        def after_epoch(self):
            if self.epoch == 1: raise CancelFitException

    def run(tmp, cbs, start_epoch=0):
        set_seed(0)
        learn = synth_learner(n_trn=8, path=tmp, cbs=Noisy())
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(4, 1e-2, cbs=cbs, start_epoch=start_epoch)
        return learn

    tmp = tmp_path
    ref = run(tmp/'ref', [])
    run(tmp/'b', [EpochCheckpoint(), Kill()])
    ckpt = read_checkpoint(tmp/'b'/CHECKPOINT)
    test_eq(ckpt['epoch'], 1)
    cb = EpochCheckpoint(resume_from=ckpt)
    resumed = run(tmp/'b', [cb], start_epoch=cb.start_epoch)
    test_eq(cb.start_epoch, 2); test_eq(read_checkpoint(tmp/'b'/CHECKPOINT)['epoch'], 3)
    for a, b in zip(ref.model.parameters(), resumed.model.parameters()): assert torch.equal(a, b)
    [p.item() for p in resumed.model.parameters()], [p.item() for p in ref.model.parameters()]
    class NoRng(EpochCheckpoint):
        def before_train(self): self.pending = False
    set_seed(1); random.random()
    other = run(tmp/'b', [NoRng(resume_from=ckpt)], start_epoch=2)
    assert not all(torch.equal(a, b) for a, b in zip(ref.model.parameters(), other.model.parameters()))
    out = tmp/'run'
    test_eq(prepare_run(out, dict(seed=0, epochs=4)), None)
    test_eq(prepare_run(out, dict(seed=0, epochs=4)), None)   # nothing trained yet: claimed again
    rec = read_run(out)
    (out/'history.csv').write_text('epoch,train_loss\n')       # training has started
    test_eq(rec['config'], {'seed': 0, 'epochs': 4}); assert 'torch' in rec['versions']
    test_fail(lambda: prepare_run(out, dict(seed=0, epochs=4)), contains='holds the outputs of a run (history.csv)')
    test_fail(lambda: prepare_run(out, dict(seed=0, epochs=5), resume=True), contains='epochs: recorded 4, now 5')
    test_eq(prepare_run(out, dict(seed=0, epochs=4), resume=True), None)   # no epoch complete yet: starts from epoch 0
    test_eq(len(read_run(out)['resumed']), 1)
    (out/'notes.txt').write_text('mine')
    prepare_run(out, dict(seed=1, epochs=2), overwrite=True)
    test_eq(read_run(out)['config']['seed'], 1); assert (out/'notes.txt').exists() and not (out/'history.csv').exists()
    pkg_root = str(Path(sys.modules['fastreid_vehicle'].__file__).parent.parent)
    code = f"import sys; sys.path.insert(0, {pkg_root!r}); from fastreid_vehicle.runs import prepare_run; prepare_run({str(out)!r}, dict(seed=1, epochs=2), overwrite=True)"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode != 0 and 'is in use' in r.stderr, r.stderr[-500:]
    unlock_run(out)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True); test_eq(r.returncode, 0)
    mine = tmp/'mine'; mine.mkdir(); (mine/'cmc.png').write_bytes(b'my plot')
    test_fail(lambda: prepare_run(mine, dict(seed=0)), contains='no run.json')
    assert (mine/'cmc.png').read_bytes() == b'my plot'
