"""Evidence that the methods work (issue 7, section 5): seeded runs with the main job's recipe on the synthetic `small`
benchmark.

    python benchmarks/method_comparison.py [--seeds 0,1,2] [--only method,anet_stage2,stripes] [--out results.json]
                                           [--threads 1] [--jobs 2] [--epochs N]
    python benchmarks/method_comparison.py --table-only --out results.json      # just print the table

Every run uses `fastreid_vehicle.pipeline.MAIN_JOB` (what `fastreid-vehicle demo` trains: data, size, P x K, augmentation,
backbone, epochs, lr, evaluated feature) and changes only the method: `ReidDataLoaders.from_df(...)`,
`reid_learner(..., amp=False)` (fp32: the same arithmetic on every CPU), `fit_one_cycle(epochs, lr)`, then
`evaluate_learner` without flip, with the recipe's camera centering. Groups:
- `method`: baseline (Bag of Tricks, `bot`) vs MFG-Net (4 stripes) vs ANet;
- `anet_stage2`: ANet after its `epochs` ("without"), then the same model continued with the second stage,
  `learn.fit(S, lr/10, cbs=AmeliorationStage())`, S = max(2, epochs // 3) ("with");
- `stripes`: MFG-Net with 1..4 stripes (the 64x64 input gives a 4-row feature map).
A run is identified by its configuration, seed and the recipe, so shared configurations are trained once.

Every result (rank-1, mAP, mINP, the first 20 CMC entries, training seconds, the 1-minute load average) is appended
to the JSON file `--out` right after its run (temp file + `os.replace`), and runs already in the file are skipped: a
crash loses nothing and rerunning the same command resumes. Per-epoch validation is switched off during training.
Prints a Markdown table: mean +- sample std over the seeds of each configuration. `--jobs 2` trains two runs at a
time with one torch thread each (on a 2-core machine 2 threads per run spin-wait when anything else runs).
"""
import argparse, json, os, platform, statistics, sys, tempfile, time
from pathlib import Path

GROUPS = ('method', 'anet_stage2', 'stripes')


def group_configs(group:str, epochs:int) -> list:
    "(label, spec) pairs of `group`; a spec is the method, its settings and the second-stage epochs (0: none)."
    s2 = max(2, epochs // 3)
    return {
        'method': [('baseline (BoT)', dict(method='bot', stage2=0)),
                 ('MFG-Net (4 stripes)', dict(method='mfgnet', n_stripes=4, stage2=0)),
                 ('ANet', dict(method='anet', stage2=0))],
        'anet_stage2': [('ANet without stage 2', dict(method='anet', stage2=0)),
                        (f'ANet with stage 2 (+{s2} ep)', dict(method='anet', stage2=s2))],
        'stripes': [(f'MFG-Net {n} stripe{"s" * (n > 1)}', dict(method='mfgnet', n_stripes=n, stage2=0))
                    for n in range(1, 5)],
    }[group]


def recipe(a) -> dict:
    "The main job's recipe (or `a.recipe`, the one a results file was made with), `--epochs` applied."
    from fastreid_vehicle.pipeline import MAIN_JOB
    r = dict(getattr(a, 'recipe', None) or MAIN_JOB)
    if a.epochs: r['epochs'] = a.epochs
    return r


def run_key(spec:dict, seed:int, a) -> str:
    "The identity of a run: configuration, seed and the shared training settings (the recipe)."
    r = recipe(a)
    return json.dumps(dict(spec, seed=seed, **{k: r[k] for k in ('epochs', 'size', 'backbone', 'P', 'K', 'lr', 'synth',
                                                                  'neck_feat', 'center_cameras', 'camera_aware') if k in r}),
                      sort_keys=True, default=list)


# ------------------------------------------------------------------ results file
def load_results(path:Path) -> dict:
    if not path.exists(): return {'runs': []}
    try: return json.loads(path.read_text())
    except json.JSONDecodeError as e: raise SystemExit(f"{path}: not a valid results file ({e}); move it away to start over")


def save_results(res:dict, path:Path):
    "Write `res` to `path` atomically (temp file in the same folder, then os.replace)."
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f: json.dump(res, f, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp): os.unlink(tmp)


# ------------------------------------------------------------------ training
def _record(key, spec, seed, r, train_s, extra=None) -> dict:
    return dict(key=key, spec=spec, seed=seed, rank1=float(r.rank1), mAP=float(r.mAP), mINP=float(r.mINP),
                cmc=[float(c) for c in r.cmc[:20]], train_seconds=round(train_s, 1),
                loadavg_1min=round(os.getloadavg()[0], 2), finished=time.strftime('%Y-%m-%d %H:%M:%S'), **(extra or {}))


def train_run(df, spec:dict, seed:int, a, stage2:int, probe=None):
    """Train `spec` with `seed`; yield (spec, record) after the main run and, for ANet with `stage2` > 0, after stage 2.
    `probe(learn)`, if given, is made before the test embedding pass (it may hook the model) and called with
    (items, features, eval config) after it: its dict goes into the record (`benchmarks/ablations.py`'s branch mAP)."""
    from fastai.basics import set_seed, Callback, CancelValidException
    from fastreid_vehicle.all import ReidDataLoaders, reid_learner, AmeliorationStage
    from fastreid_vehicle.evaluation import eval_config, evaluate_features, embed

    class NoValidation(Callback):
        "Skip the per-epoch validation pass (only the final evaluation is used); a `fit` callback, not the learner's."
        def before_validate(self): raise CancelValidException()

    set_seed(seed, reproducible=True)
    r = recipe(a)
    settings = {k: v for k, v in spec.items() if k not in ('method', 'stage2')}
    if 'neck_feat' in r: settings.setdefault('neck_feat', r['neck_feat'])
    dls = ReidDataLoaders.from_df(df, size=r['size'], P=r['P'], K=r['K'], pad=r['pad'], erase_p=r['erase_p'], seed=seed,
                                  preload=True, camera_aware=r['camera_aware'])
    learn = reid_learner(dls, spec['method'], backbone=r['backbone'], pretrained=r['pretrained'], amp=False, metrics=[],
                         **settings)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(r['epochs'], r['lr'], cbs=NoValidation())
    t_main = time.perf_counter() - t0
    def evaluate():
        "`evaluate_learner(learn, flip_tta=False, center_cameras=..., protocol='plain')`, and the probe's dict"
        cfg, dl = eval_config(flip_tta=False, center_cameras=r.get('center_cameras', False), protocol='plain'), learn.dls.valid
        p = probe(learn) if probe else None
        with learn.no_bar(): feats = embed(learn, dl, flip_tta=cfg.flip_tta)
        return evaluate_features(dl.items, feats, cfg, model=learn.model), (p(dl.items, feats, cfg) if p else {})
    res, extra = evaluate()
    yield spec, (res, t_main, extra or None)
    if spec['method'] == 'anet' and stage2:
        t0 = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit(stage2, r['lr'] / 10, cbs=[AmeliorationStage(), NoValidation()])
        t2 = time.perf_counter() - t0
        res, extra = evaluate()
        yield dict(spec, stage2=stage2), (res, t_main + t2, dict(extra, stage2_seconds=round(t2, 1)))


def _worker(spec, seed, a, stage2, probe=None):
    "Train one configuration in a worker process; the records of its main run (and stage 2)."
    import torch
    torch.set_num_threads(a.threads)
    from fastreid_vehicle.all import load_veri776, synthesize_veri
    r = recipe(a)
    df = load_veri776(synthesize_veri(preset=r['preset'], n_workers=1, **r['synth']))
    return [(sp, res, secs, extra) for sp, (res, secs, extra) in train_run(df, spec, seed, a, stage2, probe)]


def run_all(a, configs=None, probe=None, meta=None, seed_major:bool=False):
    """Train every (configuration, seed) not yet in `a.out`. `configs`: (group, label, spec) triples (default: the
    groups `a.only` of this script); `probe`: see `train_run`; `meta`: entries of the file's `meta` to add or replace;
    `seed_major`: all configurations of the first seed before the next seed (a cut-short run has whole seeds)."""
    import torch
    from concurrent.futures import ProcessPoolExecutor
    from fastreid_vehicle.all import synthesize_veri
    r = recipe(a)
    if configs is None: configs = [(g, l, sp) for g in a.only for l, sp in group_configs(g, r['epochs'])]
    synthesize_veri(preset=r['preset'], **r['synth'])   # generated once, before the workers start
    out = Path(a.out)
    res = load_results(out)
    res['meta'] = dict(benchmark=f"synthetic VeRi {r['preset']!r} with {r['synth']} (the main job's data)",
                       recipe=json.loads(json.dumps(r, default=list)), amp='fp32', flip_tta=False, threads=a.threads,
                       jobs=a.jobs, torch=torch.__version__, python=platform.python_version(),
                       machine=f'{platform.machine()}, {os.cpu_count()} cores',
                       stage2_epochs=max(2, r['epochs'] // 3), stage2_lr=r['lr'] / 10, groups=list(GROUPS)) | (meta or {})
    save_results(res, out)
    done = {x['key'] for x in res['runs']}
    s2 = max([sp['stage2'] for _, _, sp in configs if sp['method'] == 'anet'] + [0])   # ANet's stage-2 epochs (0: none)
    todo, seen = [], set()
    pairs = [(c, seed) for c in configs for seed in a.seeds]
    if seed_major: pairs.sort(key=lambda cs: a.seeds.index(cs[1]))   # stable: the configurations' order within a seed
    for (group, label, spec), seed in pairs:
        base = dict(spec, stage2=0)   # the model trained first; ANet's second stage continues it
        keys = {run_key(base, seed, a)} | ({run_key(dict(spec, stage2=s2), seed, a)} if spec['method'] == 'anet' and s2 else set())
        if keys <= done or run_key(base, seed, a) in seen: continue
        seen.add(run_key(base, seed, a)); todo.append((group, label, base, seed))
    with ProcessPoolExecutor(a.jobs) as ex:
        futs = [(g, l, seed, ex.submit(_worker, base, seed, a, s2 if base['method'] == 'anet' else 0, probe))
                for g, l, base, seed in todo]
        for g, l, seed, fu in futs:
            for sp, rr, secs, extra in fu.result():
                k = run_key(sp, seed, a)
                if k in done: continue
                res['runs'].append(_record(k, sp, seed, rr, secs, extra)); done.add(k)
                save_results(res, out)
                print(f'[{time.strftime("%H:%M:%S")}] {g}: {sp}, seed {seed}: rank-1 {rr.rank1:.4f} mAP {rr.mAP:.4f} '
                      f'mINP {rr.mINP:.4f} ({secs:.0f} s)', flush=True)
    return res


# ------------------------------------------------------------------ table
def mean_std(xs, pct=True, digits=1):
    "Mean ± sample std of `xs` as the tables show it (in % when `pct`); the value alone for a single seed, '-' for none."
    f = 100 if pct else 1
    if not xs: return '-'
    if len(xs) == 1: return f'{xs[0] * f:.{digits}f}'
    return f'{statistics.mean(xs) * f:.{digits}f} ± {statistics.stdev(xs) * f:.{digits}f}'


def summary_rows(res:dict, a, configs=None) -> list:
    "One row per (group, configuration): seeds found, mean +- std of rank-1 / mAP / mINP (%) and training seconds."
    epochs = recipe(a)['epochs']
    by_key = {r['key']: r for r in res['runs']}
    rows = []
    if configs is None: configs = [(g, l, sp) for g in GROUPS for l, sp in group_configs(g, epochs)]
    for group, label, spec in configs:
        rs = [by_key[k] for s in sorted({r['seed'] for r in res['runs']})
              if (k := run_key(spec, s, a)) in by_key]
        if not rs: continue
        rows.append(dict(group=group, config=label, seeds=len(rs),
                         **{m: mean_std([r[m] for r in rs]) for m in ('rank1', 'mAP', 'mINP')},
                         train_s=mean_std([r['train_seconds'] for r in rs], pct=False)))
    return rows


def print_table(res:dict, a, configs=None):
    rows = summary_rows(res, a, configs)
    r = recipe(a)
    print(f"\n{r['backbone']}, {r['size']}, {r['epochs']} epochs (main-job recipe); mean ± std over seeds (%), train seconds per run\n")
    print('| group | configuration | seeds | rank-1 | mAP | mINP | train s |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['group']} | {r['config']} | {r['seeds']} | {r['rank1']} | {r['mAP']} | {r['mINP']} | {r['train_s']} |")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=None, help="epochs (default: the main job's)")
    p.add_argument('--seeds', type=lambda s: [int(x) for x in s.split(',') if x], default=[0, 1, 2])
    p.add_argument('--jobs', type=int, default=2, help='runs trained at a time (one process each)')
    p.add_argument('--only', type=lambda s: [x for x in s.split(',') if x], default=list(GROUPS),
                   help=f'comma-separated groups among {",".join(GROUPS)} (run in this order)')
    p.add_argument('--out', default='results.json')
    p.add_argument('--threads', type=int, default=1,
                   help='torch CPU threads (1: on a loaded 2-core machine 2 threads were ~10x slower, spin-waiting)')
    p.add_argument('--table-only', action='store_true', help='only print the table of the results file')
    a = p.parse_args(argv)
    bad = [g for g in a.only if g not in GROUPS]
    if bad: p.error(f'unknown group(s) {bad}; choose among {list(GROUPS)}')
    return a


if __name__ == '__main__':
    a = parse_args()
    res = load_results(Path(a.out)) if a.table_only else run_all(a)
    if a.table_only and 'recipe' in res.get('meta', {}):   # the recipe the file was made with
        a.recipe = {k: tuple(v) if isinstance(v, list) else v for k, v in res['meta']['recipe'].items()}
    print_table(res, a)
