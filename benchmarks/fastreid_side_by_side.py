"""FastReID's own Bagtricks trainer and the library's baseline (`bot`), trained side by side on the same synthetic data
with the same budget, scored by the same evaluator (issue 18, item 6).

    python benchmarks/fastreid_side_by_side.py [--seeds 0,1,2] [--epochs 5] [--out benchmarks/fastreid_side_by_side.json]
    python benchmarks/fastreid_side_by_side.py --table-only [--out FILE]         # just print the table of a results file

What it does, each step idempotent:
1. installs `fastreid==1.4.0` (`pip install --no-deps`, it pins torch 1.13) into its own virtual environment
   `benchmarks/.peer/fastreid-venv` (ignored by git) beside the library's torch / torchvision versions and the few
   packages it imports (yacs, termcolor<3, tabulate<0.10, scikit-learn, faiss-cpu, opencv-python-headless<5, tensorboard,
   scipy, Cython). The library's environment stays untouched: FastReID runs in a subprocess of that venv, like the
   evaluator peer of `benchmarks/eval_speed.py` (whose helpers this script imports).
2. writes the synthetic `small` benchmark once (`synthesize_veri(root, 'small', seed=0)`, VeRi-776 layout) at
   `benchmarks/.peer/datasets/veri`, where FastReID's `VeRi` reader finds it (`FASTREID_DATASETS`).
3. trains, one run at a time, each in a fresh process with one torch thread, for every seed:
   - FastReID's Bagtricks with its own `DefaultTrainer`, driven by this file run in the FastReID venv (`--child
     fastreid`). The wheel ships no configs, so the values of FastReID's `configs/Base-bagtricks.yml` are written
     below (`bagtricks_cfg`); only the budget is changed: ResNet-18 from scratch (no ImageNet weights can be
     downloaded), 64x64, P8 x K4 (batch 32), `--epochs` epochs, the schedule (warm-up, LR steps) scaled to them,
     the padding of the random crop set to the library's (4 px at 64x64), CPU, fp32, no loader workers.
     Run-time patches, no edit of FastReID's files: `torch._six.string_classes` and `collections.Mapping` (gone from
     torch 2 / Python 3.10), `DataLoaderX` (a CUDA-stream prefetcher) replaced by a plain DataLoader, and the
     optimiser's `zero_grad(set_to_none=False)`: with torch 2's default FastReID's contiguous gradient buffers become
     None and the model never trains. The driver checks that a weight of `conv1` moved.
   - the library's baseline: `ReidDataLoaders.from_df` + `reid_learner(dls, 'bot', backbone='resnet18',
     pretrained=False, amp=False)` + `fit_one_cycle(epochs, lr)` with the main job's recipe (`pipeline.MAIN_JOB`:
     lr, pad, flip, erasing, camera-aware P x K batches) on the same budget (`--child library`).
4. embeds the test images (query + gallery) with each trained model, the feature after the BN-neck (FastReID's
   protocol) and before it (the library's default), written to .npy by each child; this process scores all of them with
   the library's `evaluate_features` (VeRi-776 standard protocol: same-id same-camera gallery images are junk, cosine
   distance, no camera centring, no flip), plus the colour + type lookup and chance on the same split
   (`evaluation.baseline_results`). FastReID's own evaluator's numbers are kept as a cross-check. Training images/s
   (images of the training iterations / training wall time) and the peak RSS (VmHWM) of each child are recorded.
5. appends every run to the JSON `--out` right after it (temp file + os.replace); runs already there are skipped, so
   rerunning the same command resumes. Prints a Markdown table: mean (+- sample std over seeds).
"""
import argparse, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # the other benchmark scripts, however this one is loaded
from machine import cpu_model

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from method_comparison import load_results, save_results, mean_std   # the resumable results file, as the other studies
from eval_speed import PEER, hwm_kb, load   # the peer folder (benchmarks/.peer, git-ignored) and the peak-RSS probe

VENV = PEER / 'fastreid-venv'
DATASETS = PEER / 'datasets'                 # FASTREID_DATASETS; the data set is DATASETS / 'veri'
TORCH_VERSIONS = ('torch==2.14.1', 'torchvision==0.29.1')   # the library's (see `python -c "import torch"`)
PEER_DEPS = ('yacs', 'termcolor<3', 'tabulate>=0.9,<0.10', 'scikit-learn', 'faiss-cpu', 'opencv-python-headless>=4.7,<5',
             'tensorboard', 'scipy', 'Cython', 'numpy')   # fastreid's own version ranges where it has them
BUDGET = dict(backbone='resnet18', pretrained=False, size=64, P=8, K=4)
# FastReID's schedule at 120 epochs: LR steps after 40 and 90 epochs, 2,000 warm-up iterations (VeRi-776 at batch 64:
# 37,778 // 64 = 590 iterations per epoch), scaled below to the epoch budget
BAGTRICKS_EPOCHS, BAGTRICKS_STEPS, BAGTRICKS_WARMUP_ITERS, VERI_ITERS_PER_EPOCH = 120, (40, 90), 2000, 37778 // 64


# ------------------------------------------------------------------ 1. FastReID's venv
def setup_fastreid(log=print) -> Path:
    "Install fastreid 1.4.0 and what it imports into benchmarks/.peer/fastreid-venv (once); its python"
    py, ok = VENV / 'bin' / 'python', VENV / '.installed'
    want = ' '.join(('fastreid==1.4.0',) + TORCH_VERSIONS + PEER_DEPS)
    if ok.exists() and ok.read_text() == want and py.exists(): return py
    PEER.mkdir(exist_ok=True)
    (PEER / '.gitignore').write_text('*\n')
    if not py.exists():
        base = getattr(sys, '_base_executable', None) or shutil.which('python3')
        subprocess.run([base, '-m', 'venv', str(VENV)], check=True)
    log(f'installing fastreid 1.4.0 into {VENV} (a few minutes: torch is large)')
    pip = [str(py), '-m', 'pip', 'install', '-q']
    subprocess.run(pip + ['--no-deps', 'fastreid==1.4.0'], check=True)
    subprocess.run(pip + list(TORCH_VERSIONS) + list(PEER_DEPS), check=True)
    # FastReID's Cython evaluator: its Makefile calls `python3`, which must be the venv's (it has Cython)
    cylib = next((VENV / 'lib').glob('python3*/site-packages/fastreid/evaluation/rank_cylib'))
    subprocess.run(['make', '-C', str(cylib)], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, 'PATH': f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"})
    ok.write_text(want)
    return py


# ------------------------------------------------------------------ 2. data
def setup_data(log=print) -> Path:
    "The synthetic `small` benchmark (seed 0) in VeRi-776 layout at benchmarks/.peer/datasets/veri (written once)"
    from fastreid_vehicle.synthetic import synthesize_veri
    t0 = time.perf_counter()
    root = synthesize_veri(DATASETS / 'veri', 'small', seed=0)
    log(f'data: {root} ({time.perf_counter() - t0:.0f} s)')
    return root


# ------------------------------------------------------------------ 3a. FastReID child (runs in the FastReID venv)
def bagtricks_cfg(epochs:int, iters_per_epoch:int, out:str, pad:int) -> dict:
    """FastReID's `configs/Base-bagtricks.yml` (its values, from the project's repository) with the budget applied.
    Returns {'KEY.PATH': value}; the comment after a changed value is Base-bagtricks' own."""
    total = epochs * iters_per_epoch
    warm = max(1, round(BAGTRICKS_WARMUP_ITERS / (BAGTRICKS_EPOCHS * VERI_ITERS_PER_EPOCH) * total))
    steps = [max(1, round(s * epochs / BAGTRICKS_EPOCHS)) for s in BAGTRICKS_STEPS]
    s = BUDGET['size']
    return {
        'MODEL.META_ARCHITECTURE': 'Baseline',
        'MODEL.DEVICE': 'cpu',                             # cuda
        'MODEL.BACKBONE.NAME': 'build_resnet_backbone',
        'MODEL.BACKBONE.NORM': 'BN',
        'MODEL.BACKBONE.DEPTH': '18x',                     # 50x
        'MODEL.BACKBONE.LAST_STRIDE': 1,
        'MODEL.BACKBONE.FEAT_DIM': 512,                    # 2048 (ResNet-50)
        'MODEL.BACKBONE.WITH_IBN': False,
        'MODEL.BACKBONE.PRETRAIN': False,                  # True (ImageNet)
        'MODEL.HEADS.NAME': 'EmbeddingHead',
        'MODEL.HEADS.NORM': 'BN',
        'MODEL.HEADS.WITH_BNNECK': True,
        'MODEL.HEADS.POOL_LAYER': 'GlobalAvgPool',
        'MODEL.HEADS.NECK_FEAT': 'before',                 # the triplet loss's feature; evaluation uses the BN-neck's
        'MODEL.HEADS.CLS_LAYER': 'Linear',
        'MODEL.LOSSES.NAME': ('CrossEntropyLoss', 'TripletLoss'),
        'MODEL.LOSSES.CE.EPSILON': 0.1,
        'MODEL.LOSSES.CE.SCALE': 1.0,
        'MODEL.LOSSES.TRI.MARGIN': 0.3,
        'MODEL.LOSSES.TRI.HARD_MINING': True,
        'MODEL.LOSSES.TRI.NORM_FEAT': False,
        'MODEL.LOSSES.TRI.SCALE': 1.0,
        'INPUT.SIZE_TRAIN': [s, s],                        # [256, 128]
        'INPUT.SIZE_TEST': [s, s],                         # [256, 128]
        'INPUT.REA.ENABLED': True,
        'INPUT.REA.PROB': 0.5,
        'INPUT.FLIP.ENABLED': True,
        'INPUT.PADDING.ENABLED': True,
        'INPUT.PADDING.SIZE': pad,                         # 10 (FastReID's default, at 256x128)
        'DATALOADER.SAMPLER_TRAIN': 'NaiveIdentitySampler',
        'DATALOADER.NUM_INSTANCE': BUDGET['K'],
        'DATALOADER.NUM_WORKERS': 0,                       # 8
        'SOLVER.AMP.ENABLED': False,                       # True (CUDA only)
        'SOLVER.OPT': 'Adam',
        'SOLVER.MAX_EPOCH': epochs,                        # 120
        'SOLVER.BASE_LR': 0.00035,
        'SOLVER.WEIGHT_DECAY': 0.0005,
        'SOLVER.WEIGHT_DECAY_NORM': 0.0005,
        'SOLVER.IMS_PER_BATCH': BUDGET['P'] * BUDGET['K'],  # 64
        'SOLVER.SCHED': 'MultiStepLR',
        'SOLVER.STEPS': steps,                             # [40, 90] of 120 epochs
        'SOLVER.GAMMA': 0.1,
        'SOLVER.WARMUP_FACTOR': 0.1,
        'SOLVER.WARMUP_ITERS': warm,                       # 2000 (of 120 x 590 iterations on VeRi-776)
        'SOLVER.CHECKPOINT_PERIOD': 10**6,                 # 30 (no checkpoint but the final one)
        'TEST.EVAL_PERIOD': 10**6,                         # 30 (one evaluation, after training)
        'TEST.IMS_PER_BATCH': 128,
        'TEST.METRIC': 'cosine',
        'DATASETS.NAMES': ('VeRi',),
        'DATASETS.TESTS': ('VeRi',),
        'OUTPUT_DIR': out,
    }


def _patch_fastreid():
    "Run-time patches that let fastreid 1.4.0 run on torch 2 / Python 3.11 on a CPU (no file of fastreid is edited)"
    import collections, collections.abc, types
    import torch
    six = types.ModuleType('torch._six'); six.string_classes = (str, bytes)
    sys.modules['torch._six'] = six; torch._six = six
    for n in ('Mapping', 'MutableMapping', 'Sequence'): setattr(collections, n, getattr(collections.abc, n))
    import fastreid.data.build as build
    from torch.utils.data import DataLoader
    def plain_loader(local_rank, **kw):   # DataLoaderX(local_rank, ...) prefetches on a CUDA stream
        return DataLoader(**{**kw, 'pin_memory': False, 'num_workers': 0})
    build.DataLoaderX = plain_loader


def child_fastreid(a):
    "Train Bagtricks with FastReID's DefaultTrainer; write features, paths and a result JSON into `a.run_dir`"
    import torch
    torch.set_num_threads(1)
    _patch_fastreid()
    import numpy as np
    from fastreid.config import get_cfg
    from fastreid.engine import DefaultTrainer
    from fastreid.engine.train_loop import HookBase
    from fastreid.utils.env import seed_all_rng
    from fastreid.data import build_reid_test_loader
    run = Path(a.run_dir); run.mkdir(parents=True, exist_ok=True)
    n_train = len(list((DATASETS / 'veri' / 'image_train').glob('*.jpg')))
    ipe = n_train // (BUDGET['P'] * BUDGET['K'])     # FastReID's iterations per epoch
    values = bagtricks_cfg(a.epochs, ipe, str(run / 'fastreid_out'), a.pad)
    cfg = get_cfg()
    cfg.merge_from_list([x for kv in values.items() for x in kv])   # yacs checks each key and type
    cfg.freeze()
    Path(cfg.OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    seed_all_rng(a.seed)
    torch.manual_seed(a.seed)
    trainer = DefaultTrainer(cfg)
    opt = trainer.optimizer
    zero = opt.zero_grad
    opt.zero_grad = lambda set_to_none=False: zero(set_to_none=False)   # else ContiguousParams' grads become None
    model = trainer.model
    w0 = model.backbone.conv1.weight.detach().clone()

    class Timer(HookBase):
        "Wall time of the training iterations (before the final evaluation)"
        def before_train(self): self.t0, self.c0 = time.perf_counter(), time.process_time()
        def after_epoch(self):
            if self.trainer.epoch + 1 == self.trainer.max_epoch: self.t1, self.c1 = time.perf_counter(), time.process_time()
    if a.smoke: trainer.iters_per_epoch = 2       # a check of the whole path, not a measurement
    timer = Timer()
    trainer.register_hooks([timer]); trainer._hooks.insert(0, trainer._hooks.pop())   # first: before eval / checkpoint
    own = trainer.train()                                 # FastReID's own evaluation runs after the last epoch
    train_s, train_cpu = timer.t1 - timer.t0, timer.c1 - timer.c0
    moved = float((model.backbone.conv1.weight.detach() - w0).abs().max())
    if moved == 0: raise RuntimeError('conv1 did not move: the model did not train (zero_grad patch?)')
    # embed query + gallery: the BN-neck's output (FastReID's evaluated feature) and its input (before the neck)
    model.eval()
    before = []
    h = model.heads.bottleneck.register_forward_hook(lambda m, i, o: before.append(i[0][..., 0, 0].detach().clone()))
    loader, num_query = build_reid_test_loader(cfg, dataset_name='VeRi')
    after, paths = [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for batch in loader:
            after.append(model(batch)); paths += list(batch['img_paths'])
    embed_s = time.perf_counter() - t0
    h.remove()
    np.save(run / 'after.npy', torch.cat(after).float().numpy()); np.save(run / 'before.npy', torch.cat(before).float().numpy())
    (run / 'paths.json').write_text(json.dumps(paths))
    own = {k: float(v) for k, v in dict(own or {}).items() if not isinstance(v, str) and np.ndim(v) == 0}
    res = dict(train_seconds=train_s, train_cpu_seconds=train_cpu, train_images=a.epochs * ipe * BUDGET['P'] * BUDGET['K'],
               iters_per_epoch=ipe,
               embed_seconds=embed_s, n_embedded=len(paths), conv1_max_change=moved, own_eval=own,
               config={k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if k != 'OUTPUT_DIR'},
               threads=torch.get_num_threads(), torch=torch.__version__, peak_rss_kb=hwm_kb())
    shutil.rmtree(run / 'fastreid_out', ignore_errors=True)   # checkpoint, logs, tensorboard events
    print('RESULT ' + json.dumps(res), flush=True)


# ------------------------------------------------------------------ 3b. library child
def child_library(a):
    "Train the library's `bot` with the main job's recipe on the budget; write features, paths and a result JSON"
    import torch
    torch.set_num_threads(1)
    import numpy as np
    from fastai.basics import set_seed, Callback, CancelValidException
    from fastreid_vehicle.all import ReidDataLoaders, reid_learner, load_veri776, embed
    from fastreid_vehicle.pipeline import MAIN_JOB as r

    class NoValidation(Callback):
        "Skip the per-epoch validation pass (the test set is embedded once after training)"
        def before_validate(self): raise CancelValidException()

    run = Path(a.run_dir); run.mkdir(parents=True, exist_ok=True)
    set_seed(a.seed, reproducible=True)
    df = load_veri776(DATASETS / 'veri')
    dls = ReidDataLoaders.from_df(df, size=BUDGET['size'], P=BUDGET['P'], K=BUDGET['K'], pad=a.pad, flip_p=r['flip_p'],
                                  erase_p=r['erase_p'], seed=a.seed, preload=True, camera_aware=r['camera_aware'])
    learn = reid_learner(dls, 'bot', backbone=BUDGET['backbone'], pretrained=BUDGET['pretrained'], amp=False, metrics=[],
                         lr=r['lr'], wd=r['wd'])
    t0, c0 = time.perf_counter(), time.process_time()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(a.epochs, r['lr'], cbs=NoValidation())
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    model = learn.model
    feats = {}
    t0 = time.perf_counter()
    for nf in ('before', 'after'):
        model.neck_feat = nf
        with learn.no_bar(): feats[nf] = embed(learn, dls.valid).numpy()
    embed_s = (time.perf_counter() - t0) / 2
    model.neck_feat = r['neck_feat']
    for nf, f in feats.items(): np.save(run / f'{nf}.npy', f.astype(np.float32))
    paths = [str(p) for p in dls.valid.items['path']]
    (run / 'paths.json').write_text(json.dumps(paths))
    res = dict(train_seconds=train_s, train_cpu_seconds=train_cpu,
               train_images=a.epochs * len(dls.train) * BUDGET['P'] * BUDGET['K'], iters_per_epoch=len(dls.train),
               embed_seconds=embed_s, n_embedded=len(paths),
               recipe=dict(lr=r['lr'], wd=r['wd'], opt='adam', schedule='one_cycle', pad=a.pad, flip_p=r['flip_p'],
                           erase_p=r['erase_p'], camera_aware=r['camera_aware'], preload=True),
               threads=torch.get_num_threads(), torch=torch.__version__, peak_rss_kb=hwm_kb())
    print('RESULT ' + json.dumps(res), flush=True)


# ------------------------------------------------------------------ 4. one evaluator for both
def test_items():
    "The query + gallery rows of the benchmark (the library's reader), in the library's order"
    from fastreid_vehicle.all import load_veri776
    df = load_veri776(DATASETS / 'veri')
    t = df[df['split'].isin(['query', 'gallery'])].reset_index(drop=True)
    t.attrs = df.attrs
    return t


def _key(p): p = Path(p); return f'{p.parent.name}/{p.name}'   # image_query/x.jpg or image_test/x.jpg


def score(items, run_dir:Path) -> dict:
    "The library's `evaluate_features` on the features a child wrote (after / before the BN-neck), in `items`' order"
    import numpy as np, torch
    from fastreid_vehicle.evaluation import evaluate_features
    paths = json.loads((run_dir / 'paths.json').read_text())
    index = {_key(p): i for i, p in enumerate(paths)}
    order = np.array([index[_key(p)] for p in items['path']])
    out = {}
    for nf in ('after', 'before'):
        f = torch.from_numpy(np.load(run_dir / f'{nf}.npy')[order])
        r = evaluate_features(items, f, dataset='veri776', protocol='auto', distance='cosine', center_cameras=False,
                              flip_tta=False)
        out[nf] = {k: float(v) for k, v in r.result.as_dict().items() if k in ('rank1', 'mAP', 'mINP')}
    return out


# ------------------------------------------------------------------ 5. results file and table
def run_key(framework, seed, a) -> str:
    return json.dumps(dict(framework=framework, seed=seed, epochs=a.epochs, pad=a.pad, **BUDGET), sort_keys=True)


def run_child(framework, seed, a, log) -> tuple:
    "Train one run in a fresh process (FastReID's venv or this one); its result record and folder of features"
    run_dir = PEER / 'side_by_side_runs' / f'{framework}_seed{seed}_ep{a.epochs}'
    shutil.rmtree(run_dir, ignore_errors=True)
    py = setup_fastreid(log) if framework == 'fastreid' else Path(sys.executable)
    env = {**os.environ, 'PATH': f"{py.parent}{os.pathsep}{os.environ.get('PATH', '')}", 'OMP_NUM_THREADS': '1',
           'MKL_NUM_THREADS': '1', 'FASTREID_DATASETS': str(DATASETS),
           'PYTHONPATH': str(HERE.parent) if framework == 'library' else ''}
    cmd = [str(py), __file__, '--child', framework, '--run-dir', str(run_dir), '--seed', str(seed),
           '--epochs', str(a.epochs), '--pad', str(a.pad)]
    t0 = time.perf_counter()
    logf = run_dir.with_suffix('.log'); logf.parent.mkdir(parents=True, exist_ok=True)
    with open(logf, 'w') as f: p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, env=env)
    lines = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
    if p.returncode or not lines:
        raise RuntimeError(f'{framework} seed {seed} failed (exit {p.returncode}); see {logf}:\n'
                           + '\n'.join(logf.read_text().splitlines()[-30:]))
    rec = json.loads(lines[-1][len('RESULT '):])
    rec['wall_seconds'] = time.perf_counter() - t0
    return rec, run_dir


def run_all(a, log):
    import torch
    out = Path(a.out)
    res = load_results(out)
    setup_fastreid(log)
    setup_data(log)
    items = test_items()
    cpu = cpu_model()
    res['meta'] = dict(benchmark="synthetic VeRi 'small' (seed 0): "
                       f"{int((items['split'] == 'query').sum())} queries, {int((items['split'] == 'gallery').sum())} gallery",
                       budget=dict(BUDGET, epochs=a.epochs, pad=a.pad, threads=1), machine=cpu, cores=os.cpu_count(),
                       torch=torch.__version__, python=platform.python_version(),
                       evaluation='library evaluate_features, VeRi-776 standard protocol (same-id same-camera junk), '
                                  'cosine, no camera centring, no flip')
    if 'baselines' not in res:
        from fastreid_vehicle.evaluation import baseline_results
        b = baseline_results(items, dataset='veri776')
        res['baselines'] = {k: {m: float(v) for m, v in r.result.as_dict().items() if m in ('rank1', 'mAP', 'mINP')}
                            for k, r in b.items()}
    save_results(res, out)
    done = {r['key'] for r in res['runs']}
    for seed in a.seeds:
        for fw in a.frameworks:
            k = run_key(fw, seed, a)
            if k in done: log(f'{fw} seed {seed}: already in {out}, skipped'); continue
            log(f'[{time.strftime("%H:%M:%S")}] training {fw}, seed {seed}, {a.epochs} epochs (load {" ".join(load())})')
            rec, run_dir = run_child(fw, seed, a, log)
            rec.update(key=k, framework=fw, seed=seed, epochs=a.epochs, scores=score(items, run_dir),
                       loadavg_1min=round(os.getloadavg()[0], 2), finished=time.strftime('%Y-%m-%d %H:%M:%S'))
            shutil.rmtree(run_dir, ignore_errors=True)
            res['runs'].append(rec); done.add(k); save_results(res, out)
            s = rec['scores']
            log(f'[{time.strftime("%H:%M:%S")}] {fw} seed {seed}: after BN-neck rank-1 {s["after"]["rank1"]:.4f} mAP '
                f'{s["after"]["mAP"]:.4f}; before rank-1 {s["before"]["rank1"]:.4f} mAP {s["before"]["mAP"]:.4f}; '
                f'{rec["train_images"] / rec["train_seconds"]:.1f} img/s, {rec["train_images"] / rec["train_cpu_seconds"]:.1f} img/CPU-s, peak RSS {rec["peak_rss_kb"] / 2**20:.2f} GB')
    return res


NAMES = {'fastreid': 'FastReID 1.4.0 Bagtricks (its trainer)', 'library': 'fastreid_vehicle `bot` (fit_one_cycle)'}


def table(res:dict, epochs:int|None=None) -> str:
    runs = [r for r in res['runs'] if epochs is None or r['epochs'] == epochs]
    L = ['| model | evaluated feature | seeds | rank-1 | mAP | mINP | train img/s (wall) | train img per CPU-s | peak RSS, GB |',
         '|---|---|---|---|---|---|---|---|---|']
    for fw in ('fastreid', 'library'):
        rs = [r for r in runs if r['framework'] == fw]
        if not rs: continue
        ips = mean_std([r['train_images'] / r['train_seconds'] for r in rs], pct=False)
        rss = mean_std([r['peak_rss_kb'] / 2**20 for r in rs], pct=False, digits=2)
        cps = mean_std([r['train_images'] / r['train_cpu_seconds'] for r in rs if r.get('train_cpu_seconds')], pct=False)
        for nf, what in (('after', 'after BN-neck' + (' (its protocol)' if fw == 'fastreid' else '')),
                         ('before', 'before BN-neck' + (' (library default)' if fw == 'library' else ''))):
            L.append(f'| {NAMES[fw]} | {what} | {len(rs)} | '
                     + ' | '.join(mean_std([r['scores'][nf][m] for r in rs]) for m in ('rank1', 'mAP', 'mINP'))
                     + f' | {ips} | {cps} | {rss} |')
    for k, name in (('lookup', 'colour + type lookup'), ('chance', 'chance')):
        b = res.get('baselines', {}).get(k)
        if b: L.append(f'| {name} | - | - | ' + ' | '.join(f'{b[m] * 100:.1f}' for m in ('rank1', 'mAP', 'mINP')) + ' | - | - | - |')
    fr = [r for r in runs if r['framework'] == 'fastreid' and r.get('own_eval')]
    if fr:
        own = lambda m: mean_std([r['own_eval'].get(m, float('nan')) / 100 for r in fr])
        L += ['', f"FastReID's own evaluator on its features (cross-check): rank-1 {own('Rank-1')}, mAP {own('mAP')}, "
                  f"mINP {own('mINP')}."]
    first = {fw: next((r for r in runs if r['framework'] == fw), None) for fw in ('fastreid', 'library')}
    if any(first.values()):
        L += ['', 'Training batches per epoch: ' + ', '.join(f"{NAMES[fw].split(' (')[0]} {r['iters_per_epoch']}"
                                                             for fw, r in first.items() if r)
              + f" (of {BUDGET['P'] * BUDGET['K']} images). Train img/s: the images of the training iterations over "
              'their wall time; img per CPU-s: over the CPU time of the process (1 torch thread each, so on a loaded '
              'machine this is the steadier measure of cost); mean load average (1 min) at the end of the runs: '
              + ', '.join(f"{NAMES[fw].split(' (')[0]} {statistics.mean(r['loadavg_1min'] for r in runs if r['framework'] == fw):.1f}"
                          for fw, r in first.items() if r) + '.']
    return '\n'.join(L)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--seeds', type=lambda s: [int(x) for x in s.split(',') if x], default=[0])
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--pad', type=int, default=None, help="random-crop padding of both (default: the library's, 4)")
    p.add_argument('--frameworks', type=lambda s: [x for x in s.split(',') if x], default=['fastreid', 'library'])
    p.add_argument('--out', default=str(HERE / 'fastreid_side_by_side.json'), help='results file (resumable)')
    p.add_argument('--table-only', action='store_true')
    p.add_argument('--child', choices=['fastreid', 'library'], help=argparse.SUPPRESS)
    p.add_argument('--run-dir', help=argparse.SUPPRESS)
    p.add_argument('--seed', type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument('--smoke', action='store_true', help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.pad is None: a.pad = 4   # DataConfig.pad at 64x64 (MAIN_JOB['pad']); read there when the library is importable
    return a


def main():
    a = parse_args()
    if a.child == 'fastreid': return child_fastreid(a)
    if a.child == 'library': return child_library(a)
    sys.path.insert(0, str(HERE.parent))
    log = lambda s: print(s, flush=True)
    if a.table_only: res = load_results(Path(a.out))
    else:
        from fastreid_vehicle.pipeline import MAIN_JOB
        if a.pad != MAIN_JOB['pad']: log(f"note: --pad {a.pad} differs from the library's {MAIN_JOB['pad']}")
        res = run_all(a, log)
    print(f"\nResNet-18 from scratch, {BUDGET['size']}x{BUDGET['size']}, P{BUDGET['P']} x K{BUDGET['K']}, "
          f"{a.epochs} epochs, 1 thread each; mean ± std over seeds (%)\n")
    print(table(res, a.epochs))


if __name__ == '__main__': main()
