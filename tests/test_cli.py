"The command line and `train()` on the tiny synthetic benchmark: files written, metrics sane, errors named."
import json, re, subprocess, sys
from pathlib import Path
import pandas as pd, pytest, torch
from fastai.learner import load_learner
import fastreid_vehicle.pipeline as pipeline
import fastreid_vehicle.pipeline as cli   # the Python API the command line calls
from fastreid_vehicle.cli import main
from fastreid_vehicle.pipeline import train, load_reid_data
import fastreid_vehicle.images as images
from fastreid_vehicle.data import ReidDataLoaders
from fastreid_vehicle.inference import load_weights
from fastreid_vehicle.synthetic import SYNTH_MANIFEST

TINY = dict(dataset='synthetic', preset='tiny', size=64, P=4, K=4, epochs=1, progress=False, threads=1)

@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    "The tiny synthetic benchmark, generated once for the tests that do not change its config."
    return tmp_path_factory.mktemp('tiny')/'veri'

def test_train_writes_model_metrics_and_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative `out`, as the README's main command uses
    res = train(dataset='synthetic', preset='tiny', root=tmp_path/'veri', out='run', size=64, P=4, K=4,
                epochs=1, progress=False)
    for k in ('batch', 'model', 'learner', 'history', 'retrieval', 'cmc', 'metrics'): assert Path(res['files'][k]).exists(), k
    saved = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert saved['rank1'] == pytest.approx(res['rank1']) and 0 <= saved['mAP'] <= 1
    assert (tmp_path/'run'/'history.csv').read_text().startswith('epoch,train_loss,valid_loss,rank1,mAP,mINP')

def test_train_reports_baselines_and_synth_overrides(tmp_path):
    synth = dict(detail_scale=2.)
    res = train(root=tmp_path/'veri', out=tmp_path/'run', synth=synth, **TINY)
    assert res['settings']['synth'] == synth
    manifest = json.loads((tmp_path/'veri'/SYNTH_MANIFEST).read_text())
    assert manifest['config']['detail_scale'] == 2. and manifest['preset'] == 'tiny'
    saved = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert saved['settings']['synth'] == synth
    for b in (res['baselines'], saved['baselines']):
        assert set(b) == {'lookup', 'chance'}
        for r in b.values(): assert set(r) == {'rank1', 'mAP', 'mINP'} and all(0 <= v <= 1 for v in r.values()), r
        assert b['lookup']['mAP'] > b['chance']['mAP']
    assert saved['baselines'] == res['baselines']

@pytest.mark.parametrize('fails', ['evaluate_protocol_tables', 'embed'])
def test_train_saves_model_before_evaluating(tiny_root, tmp_path, monkeypatch, fails):
    def boom(*args, **kwargs): raise RuntimeError(f'{fails} failed')
    monkeypatch.setattr(cli, fails, boom)
    out = tmp_path/'run'
    with pytest.raises(RuntimeError, match=f'{fails} failed'): train(root=tiny_root, out=out, **TINY)
    assert (out/'model.safetensors').exists() and (out/'learner.pkl').exists()
    assert not (out/'metrics.json').exists()   # no summary of an evaluation that did not happen
    learn = load_learner(out/'learner.pkl')
    sd = {k: v.clone() for k, v in learn.model.state_dict().items()}
    for v in learn.model.state_dict().values():
        if v.is_floating_point(): v.zero_()
    load_weights(learn.model, out/'model.safetensors')  # strict: the same architecture as the exported learner
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, sd[k]), k

def _table(out:str) -> dict:
    "Rows of `_print_summary`'s table: name -> (rank-1, mAP, mINP)."
    rows = re.findall(r'^\s{2}(\S.*?)\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d\.\d{4})\s*$', out, re.M)
    return {name: tuple(map(float, v)) for name, *v in rows}

def test_command_line_train_and_synth(tmp_path, capsys):
    main(['synth', str(tmp_path/'veri'), '--preset', 'tiny'])
    assert (tmp_path/'veri'/'name_train.txt').exists()
    capsys.readouterr()
    main(['train', '--method', 'mfgnet', '--preset', 'tiny', '--root', str(tmp_path/'veri'), '--out', str(tmp_path/'run'),
          '--backbone', 'resnet18', '--no-pretrained', '--size', '64,32', '--P', '4', '--K', '4', '--epochs', '1', '--no-progress', '--threads', '1', '--set', 'n_stripes=2'])
    cap = capsys.readouterr()
    out, work = cap.out, cap.err   # results on stdout; the epoch table (work in progress) on stderr
    saved = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert saved['settings']['size'] == [64, 32]
    assert re.search(r'^\s+rank-1\s+mAP\s+mINP$', out, re.M), out
    rows = _table(out)
    assert list(rows) == ['mfgnet / resnet18', 'lookup (baseline)', 'chance (baseline)'], out
    assert rows['mfgnet / resnet18'] == pytest.approx((saved['rank1'], saved['mAP'], saved['mINP']), abs=1e-4)
    for k in ('lookup', 'chance'):
        b = saved['baselines'][k]
        assert rows[f'{k} (baseline)'] == pytest.approx((b['rank1'], b['mAP'], b['mINP']), abs=1e-4)
    assert f"{saved['num_queries']} queries" in out
    # --no-progress prints the epoch table as text (header once, one row per epoch), not fastai's bare lists
    hist = pd.read_csv(tmp_path/'run'/'history.csv')
    assert re.search(r'^\s+' + r'\s+'.join(hist.columns) + r'$', work, re.M), work
    assert re.search(r'^\s+0\s+' + f"{hist['train_loss'].iloc[0]:.4f}", work, re.M), work
    assert '[0, ' not in out, out

def _spy_preload(monkeypatch, stop=False):
    "Record the `preload` that `train` passes to `ReidDataLoaders.from_df` (and whether the loaders hold the images)."
    seen, orig = [], ReidDataLoaders.from_df
    class Stop(Exception): pass
    def from_df(cls, df, **kwargs):
        seen.append(kwargs.get('preload'))
        if stop: raise Stop
        dls = orig(df, **kwargs)
        seen.append(all(getattr(dl.dataset, 'preloaded', None) is not None for dl in (dls.train, dls.valid)))
        return dls
    monkeypatch.setattr(ReidDataLoaders, 'from_df', classmethod(from_df))
    return seen, Stop

@pytest.mark.parametrize('preload', [True, False])
def test_train_with_and_without_preload(tiny_root, tmp_path, monkeypatch, preload):
    seen, _ = _spy_preload(monkeypatch)
    res = train(root=tiny_root, out=tmp_path/'run', preload=preload, **TINY)
    assert seen == [preload, preload]
    assert 0 <= res['mAP'] <= 1 and 0 <= res['rank1'] <= 1 and Path(res['files']['model']).exists()
    assert res['settings']['synth'] == {} and json.loads((tiny_root/SYNTH_MANIFEST).read_text())['config']['detail_scale'] == 1.

def test_preload_none_follows_memory_budget(tiny_root, tmp_path, monkeypatch):
    seen, Stop = _spy_preload(monkeypatch, stop=True)
    with pytest.raises(Stop): train(root=tiny_root, out=tmp_path/'run', **TINY)  # the tiny images fit: preloaded
    n = len(load_reid_data('synthetic', tiny_root, 'tiny'))
    monkeypatch.setattr(cli, 'PRELOAD_MAX_BYTES', n * 3 * 64 * 64)       # exactly fits
    with pytest.raises(Stop): train(root=tiny_root, out=tmp_path/'run', **TINY)
    monkeypatch.setattr(cli, 'PRELOAD_MAX_BYTES', n * 3 * 64 * 64 - 1)   # one byte short
    with pytest.raises(Stop): train(root=tiny_root, out=tmp_path/'run', **TINY)
    assert seen == [True, True, False]

def test_real_dataset_needs_root():
    with pytest.raises(ValueError, match='root'): load_reid_data('veri776')

def test_bad_setting_is_reported(tmp_path):
    with pytest.raises(TypeError, match='n_stripez'):
        train(preset='tiny', root=tmp_path/'veri', out=tmp_path/'run', size=64, P=4, K=4, epochs=1, progress=False,
              method='mfgnet', n_stripez=2)

def test_console_script_help():
    exe = Path(sys.executable).parent/'fastreid-vehicle'
    r = subprocess.run([str(exe), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'demo' in r.stdout and 'train' in r.stdout


def test_recipe_on_the_command_line(tmp_path, capsys):
    "`--recipe` takes the recipe's values; every flag given beside it wins, even one equal to train()'s default"
    from fastreid_vehicle.synthetic import synthesize_veri
    from fastreid_vehicle.recipes import RECIPES
    with pytest.raises(SystemExit): main(['train', '--help'])
    help_text = capsys.readouterr().out
    assert all(n in help_text for n in RECIPES) and '--recipe' in help_text and '--method' in help_text
    root = synthesize_veri(tmp_path/'veri', 'tiny', seed=0, n_workers=1)
    main(['train', '--recipe', 'mfgnet-veri776', '--dataset', 'veri776', '--root', str(root), '--out', str(tmp_path/'run'),
          '--backbone', 'resnet18', '--no-pretrained', '--size', '32,16', '--P', '4', '--K', '4', '--bs-valid', '32',
          '--epochs', '1', '--milestones', '', '--lr', '0.003', '--no-progress', '--threads', '1'])
    saved = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert saved['recipe'] == 'mfgnet-veri776' and saved['method'] == 'mfgnet'
    st = saved['settings']
    assert st['lr'] == 0.003 and st['size'] == [32, 16] and (st['P'], st['K']) == (4, 4)   # the flags
    assert saved['eval_distance'] == 'euclidean' and st['camera_aware'] is False                       # the recipe
    assert st['center_cameras'] is False and st['neck_feat'] == 'before'
    assert 'mfgnet / resnet18' in capsys.readouterr().out
    with pytest.raises(SystemExit): main(['train', '--recipe', 'mfgnet-market'])

# ---------------------------------------------------------------- eval and search (after training)
@pytest.fixture(scope='module')
def saved_learner(tiny_root, tmp_path_factory):
    "A learner with untrained weights on the tiny benchmark, exported as `train` does"
    from fastreid_vehicle.learner import reid_learner
    df = load_reid_data('synthetic', tiny_root, 'tiny')
    dls = ReidDataLoaders.from_df(df, size=(64, 64), P=4, K=4, bs_valid=32, seed=0)
    out = tmp_path_factory.mktemp('saved')
    learn = reid_learner(dls, 'bot', backbone='resnet18', pretrained=False, path=out, model_dir='.')
    from fastreid_vehicle.config import build_settings   # a run folder as `train` leaves it: eval/search read no pickle
    from fastreid_vehicle.runs import write_run
    write_run(out, learn, build_settings(size=(64, 64), P=4, K=4, backbone='resnet18', pretrained=False).flat())
    return out, learn

def test_eval_command_writes_metrics_and_figures(saved_learner, tiny_root, tmp_path, capsys):
    from fastreid_vehicle.evaluation import evaluate_learner
    folder, learn = saved_learner
    main(['eval', str(folder), '--preset', 'tiny', '--root', str(tiny_root), '--out', str(tmp_path/'ev'),
          '--no-progress', '--no-center-cameras'])
    saved = json.loads((tmp_path/'ev'/'metrics.json').read_text())
    for k, f in saved['files'].items(): assert Path(f).is_file() and Path(f).stat().st_size > 1000, k
    assert {'by_camid', 'by_color', 'by_type', 'worst', 'activations', 'confusion'} <= set(saved['files'])
    with learn.no_bar(): ref = evaluate_learner(learn)   # same weights, no flip, no camera centring
    assert saved['mAP'] == pytest.approx(ref.mAP, abs=1e-6) and saved['rank1'] == pytest.approx(ref.rank1)
    assert sum(r['queries'] for r in saved['breakdowns']['camid']) == saved['num_valid']
    assert 'mAP' in capsys.readouterr().out and not list((tmp_path/'ev').glob('.*tmp'))
    with pytest.raises(SystemExit): main(['eval', str(tmp_path/'nothing'), '--preset', 'tiny'])
    assert 'run.json' in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match='run.json'): main(['--debug', 'eval', str(tmp_path/'nothing'), '--preset', 'tiny'])

def test_search_command_folder_csv_and_saved_index(saved_learner, tiny_root, tmp_path, capsys):
    import pandas as pd
    folder, _ = saved_learner
    gal = sorted((tiny_root/'image_test').glob('*.jpg'))
    q = [str(gal[0]), str(gal[5])]
    main(['search', str(folder), *q, '--gallery', str(tiny_root/'image_test'), '--index', str(tmp_path/'idx'), '-k', '3',
          '--out', str(tmp_path/'m.png')])
    out = capsys.readouterr().out
    assert (tmp_path/'m.png').stat().st_size > 1000 and (tmp_path/'idx').is_dir()
    first = [l.split() for l in out.splitlines()[1:] if l.split() and l.split()[1] == '0']
    assert [Path(r[-1]).name for r in first] == [Path(p).name for p in q]   # a gallery image finds itself first
    # the saved index answers the same without a gallery; a CSV (relative paths) builds the same index
    res = cli.search_images(folder, q, index=tmp_path/'idx', k=3)
    pd.DataFrame({'path': [p.name for p in gal], 'note': range(len(gal))}).to_csv(tiny_root/'image_test'/'g.csv', index=False)
    res2 = cli.search_images(folder, q, gallery=tiny_root/'image_test'/'g.csv', k=3)
    assert (res.indices == res2.indices).all() and 'note' in res2.metadata.columns
    (tiny_root/'image_test'/'g.csv').unlink()
    with pytest.raises(ValueError, match="'path' column"):
        pd.DataFrame({'file': ['a.jpg']}).to_csv(tmp_path/'bad.csv', index=False); images.image_table(tmp_path/'bad.csv')
    with pytest.raises(FileNotFoundError, match='query image'): cli.search_images(folder, [tmp_path/'no.jpg'], index=tmp_path/'idx')


def _cli_quietly(code:str) -> subprocess.CompletedProcess:
    "`code` in a fresh Python, with the package of this checkout, stdout and stderr captured (pipes, not a terminal)"
    import os
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), MPLBACKEND='Agg')
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=900)

def test_help_and_version_import_no_heavy_library():
    "`--help` and `--version` answer without importing torch, fastai or timm (a few seconds each): well under a second"
    for flag in ('--help', '--version'):
        r = _cli_quietly(f"import sys\nfrom fastreid_vehicle.cli import main\ntry: main([{flag!r}])\nexcept SystemExit: pass\n"
                         "print('HEAVY', sorted(m for m in ('torch', 'fastai', 'timm') if m in sys.modules))")
        assert r.returncode == 0 and "HEAVY []" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert 'fastreid-vehicle 0.1.0' in r.stdout

def test_train_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit): main(['train', '--help'])
    h = ' '.join(capsys.readouterr().out.split())
    for s in ('--epochs EPOCHS', '--backbone BACKBONE a timm model name', '(default: tf_efficientnet_lite0)', '(default: bot)'):
        assert s in h, s

def test_work_prints_on_stderr_results_on_stdout(monkeypatch, capsys):
    "What the library prints while it works (progress, notes) goes to stderr; the command's result to stdout"
    def fake_train(*args, **kwargs): print('epoch 1/1 |####| note'); return None
    monkeypatch.setattr(pipeline, 'train', fake_train)
    main(['train', '--preset', 'tiny'])
    got = capsys.readouterr()
    assert 'epoch 1/1' in got.err and not got.out
    from fastreid_vehicle import synthetic
    monkeypatch.setattr(synthetic, 'synthesize_veri', lambda dest, preset, seed: print('drawing...') or Path(dest))
    main(['synth', 'somewhere'])
    got = capsys.readouterr()
    assert got.out == 'somewhere\n' and 'drawing...' in got.err

@pytest.mark.parametrize('err, code, shown', [
    (ValueError('size must be positive'), 2, 'fastreid-vehicle train: error: size must be positive'),
    (ImportError('GalleryIndex needs faiss-cpu: pip install "fastreid_vehicle[search]"'), 2,
     'fastreid-vehicle train: error: GalleryIndex needs faiss-cpu: pip install "fastreid_vehicle[search]"'),
    (RuntimeError('CUDA out of memory'), 1,
     'fastreid-vehicle train: error: RuntimeError: CUDA out of memory (an unexpected error: --debug shows the traceback)'),
    (KeyboardInterrupt(), 130, 'fastreid-vehicle train: interrupted')])
def test_errors_are_one_message_and_debug_shows_the_traceback(monkeypatch, capsys, err, code, shown):
    def fail(*args, **kwargs): raise err
    monkeypatch.setattr(pipeline, 'train', fail)
    with pytest.raises(SystemExit) as e: main(['train', '--preset', 'tiny'])
    assert e.value.code == code and capsys.readouterr().err == shown + '\n'
    with pytest.raises(type(err)): main(['--debug', 'train', '--preset', 'tiny'])
    monkeypatch.setenv('FASTREID_VEHICLE_DEBUG', '1')
    with pytest.raises(type(err)): main(['train', '--preset', 'tiny'])

@pytest.mark.slow   # one tiny training in a fresh process: about a minute on a quiet 2-core machine
def test_progress_bars_go_to_stderr_when_piped(tmp_path):
    "fastprogress writes its bars to stdout even when it is a pipe; the command line sends them to stderr"
    args = ['train', '--preset', 'tiny', '--root', str(tmp_path/'veri'), '--out', str(tmp_path/'run'), '--size', '64',
            '--P', '4', '--K', '4', '--epochs', '1', '--backbone', 'resnet18', '--no-pretrained', '--threads', '1']
    r = _cli_quietly(f"from fastreid_vehicle.cli import main; main({args!r})")
    assert r.returncode == 0, r.stderr[-3000:]
    bar = re.compile(r'\|[█-]+\| [\d.]+% \[\d+/\d+')   # fastprogress' bar: |███---| 40.00% [2/5 00:01<00:02]
    assert not bar.search(r.stdout) and '█' not in r.stdout and 'train_loss' not in r.stdout, r.stdout
    assert re.search(r'^\s+rank-1\s+mAP\s+mINP$', r.stdout, re.M) and 'metrics.json' in r.stdout
    assert bar.search(r.stderr) and 'train_loss' in r.stderr and 'precision:' in r.stderr
