"""Why trained embeddings lost to the colour + type lookup, and what fixed it (issue 7, section 3).

    python benchmarks/main_job_study.py [--only GROUP,...] [--out nbs/experiments/main_job_study.json] [--threads 1]
                                        [--jobs 2] [--table-only]

Each experiment is the main job's recipe (`fastreid_vehicle.pipeline.MAIN_JOB`, what `fastreid-vehicle demo` trains) with
a few settings changed: the synthetic data (`synth`, `SynthConfig` fields over the `small` preset), the data loader,
the model, the loss or the schedule. One run = generate (cached) -> `ReidDataLoaders.from_df` -> `reid_learner` ->
`fit_one_cycle`, in fp32, then on the held-out identities:
- rank-1 / mAP of the BN-neck feature ('after') and of the feature before it ('before'), with cosine and
  Euclidean distance, and of the recipe's feature after `center_by_camera` ('centred': what the main job reports);
- the colour + type lookup and chance on the same split (`attribute_only_baseline`);
- a camera-shortcut probe: the share of wrong rank-1 matches that come from the query's own camera, beside the
  share of the query's own camera among all valid gallery images (a model that encodes the background puts
  same-camera vehicles first);
- per-epoch validation mAP (the Recorder metric), the final training loss, the training seconds.
Results are appended to `--out` after each run (temporary file + rename); runs already there are skipped, so a
rerun resumes. `--jobs 2` runs two experiments at a time, one torch thread each.
"""
import argparse, copy, json, os, platform, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from method_comparison import load_results, save_results   # noqa: E402

OLD_SMALL = dict(n_train_ids=200, n_test_ids=70, imgs_per_id=20., min_imgs_per_id=6, cams_per_id=(2, 6), size=128,
                 detail_scale=1., shade_jitter=1., light_jitter=1.)   # the `small` preset before issue 7

# group -> [(label, overrides of the recipe)]; 'synth' overrides are merged into the recipe's synthetic config
EXPERIMENTS = {   # in the order they run: the questions of issue 7 first
    'recipe': [('main job recipe', {})],
    'old': [('old recipe: old small, BoT ResNet-18 scratch, P16xK4, 10 ep', dict(
        synth=OLD_SMALL, P=16, K=4, epochs=10, lr=3e-3, neck_feat='after', preload=False, camera_aware=False))],
    'backbone': [('tf_efficientnet_lite0, ImageNet (packaged)', dict(backbone='tf_efficientnet_lite0', pretrained=True))],
    'sampler': [('plain P x K batches (not camera-aware)', dict(camera_aware=False))],
    'identities': [('200 train ids x 20 images', dict(synth=dict(n_train_ids=200, imgs_per_id=20., min_imgs_per_id=6,
                                                                 cams_per_id=(2, 6))))],
    'details': [('identity details at 1x (old size)', dict(synth=dict(detail_scale=1.)))],
    'views': [('camera views as before (view_spread 1)', dict(synth=dict(view_spread=1.)))],
    'lr': [('lr x3', dict(lr_mult=3.)), ('lr x1/3', dict(lr_mult=1 / 3))],
    'shades': [('paint shades and camera light as before', dict(synth=dict(shade_jitter=1., light_jitter=1.)))],
    'augmentation': [('+ random erasing p=0.5', dict(erase_p=.5))],
    'old_data': [('old small preset, main job recipe', dict(synth=OLD_SMALL))],
}


def recipe(overrides:dict) -> dict:
    "The main job's settings with `overrides` applied."
    from fastreid_vehicle.pipeline import MAIN_JOB
    r = copy.deepcopy(MAIN_JOB)
    o = copy.deepcopy(overrides)
    r['synth'] = {**r.get('synth', {}), **o.pop('synth', {})}
    if 'lr_mult' in o: r['lr'] = r['lr'] * o.pop('lr_mult')
    if 'epochs_mult' in o: r['epochs'] = max(1, round(r['epochs'] * o.pop('epochs_mult')))
    r.update(o)
    return r


def run_one(label:str, overrides:dict, threads:int, seed:int=0) -> dict:
    "Train one experiment and measure it (see the module docstring)."
    import numpy as np, torch
    torch.set_num_threads(threads)
    from fastai.basics import set_seed
    from fastreid_vehicle.all import (synthesize_veri, load_veri776, ReidDataLoaders, reid_learner, embed,
                                      evaluate_features, attribute_only_baseline, split_query_gallery)
    r = recipe(overrides)
    root = synthesize_veri(preset=r['preset'], seed=seed, n_workers=1, **r['synth'])
    df = load_veri776(root)
    set_seed(seed, reproducible=True)
    dls = ReidDataLoaders.from_df(df, size=tuple(r['size']), P=r['P'], K=r['K'], pad=r['pad'], flip_p=r.get('flip_p', .5),
                                  erase_p=r['erase_p'], seed=seed, preload=True if r['preload'] is None else r['preload'],
                                  camera_aware=r['camera_aware'])
    learn = reid_learner(dls, r['method'], backbone=r['backbone'], pretrained=r['pretrained'], amp=False,
                         **r.get('settings', {}))
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(r['epochs'], r['lr'])
    train_s = time.perf_counter() - t0
    hist = [dict(zip(learn.recorder.metric_names[1:], v)) for v in learn.recorder.values]
    items = dls.valid.items
    out = dict(label=label, overrides=overrides, seed=seed, train_seconds=round(train_s, 1),
               train_images=int((df.split == 'train').sum()), train_ids=int(df[df.split == 'train'].pid.nunique()),
               epochs=r['epochs'], final_train_loss=float(learn.recorder.losses[-1]),
               epoch_mAP=[round(float(h.get('mAP', float('nan'))), 4) for h in hist])
    feats = {}
    for nf in ('after', 'before'):
        learn.model.neck_feat = nf
        feats[nf] = embed(learn)
        for metric in ('cosine', 'euclidean'):
            res = evaluate_features(items, feats[nf], protocol='plain', distance=metric)
            out[f'{nf}_{metric}'] = dict(rank1=round(float(res.rank1), 4), mAP=round(float(res.mAP), 4))
    res = evaluate_features(items, feats[r['neck_feat']], protocol='plain', center_cameras=True)   # camera-centred, as the main job reported it then
    out['centred'] = dict(rank1=round(float(res.rank1), 4), mAP=round(float(res.mAP), 4), mINP=round(float(res.mINP), 4))
    # camera shortcut: where do the wrong first matches come from?
    q, g = split_query_gallery(items)
    f = torch.nn.functional.normalize(feats['after'], dim=1)
    d = 1 - f[torch.from_numpy(q)] @ f[torch.from_numpy(g)].T
    col = lambda c, m: items[c].to_numpy()[m]
    qp, gp, qc, gc = col('pid', q), col('pid', g), col('camid', q), col('camid', g)
    junk = (qp[:, None] == gp[None]) & (qc[:, None] == gc[None])
    d[torch.from_numpy(junk)] = float('inf')
    top = d.argmin(1).numpy(); wrong = gp[top] != qp
    out['wrong_rank1_same_camera'] = round(float((gc[top] == qc)[wrong].mean()), 3) if wrong.any() else None
    out['same_camera_share_of_gallery'] = round(float(((gc[None] == qc[:, None]) & ~junk).sum() / (~junk).sum()), 3)
    b = attribute_only_baseline(root).set_index('ranking')
    out['lookup'] = dict(rank1=float(b.loc['colour + type', 'rank1']) / 100, mAP=float(b.loc['colour + type', 'mAP']) / 100)
    out['chance'] = dict(rank1=float(b.loc['chance (no knowledge)', 'rank1']) / 100,
                         mAP=float(b.loc['chance (no knowledge)', 'mAP']) / 100)
    out['loadavg_1min'] = round(os.getloadavg()[0], 2)
    return out


def key(label, overrides, seed): return json.dumps(dict(label=label, overrides=overrides, seed=seed), sort_keys=True, default=list)


def print_table(res:dict):
    print('| group | experiment | train ids | epochs | train s | mAP after/cos | mAP before/cos | mAP before/euc | rank-1 | lookup mAP | wrong r1 same cam (base) |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for r in res['runs']:
        pc = lambda d: f"{100 * d['mAP']:.1f}"
        print(f"| {r['group']} | {r['label']} | {r['train_ids']} | {r['epochs']} | {r['train_seconds']:.0f} | {pc(r['after_cosine'])} | "
              f"{pc(r['before_cosine'])} | {pc(r['before_euclidean'])} | {100 * r['after_cosine']['rank1']:.1f} | "
              f"{100 * r['lookup']['mAP']:.1f} | {r['wrong_rank1_same_camera']} ({r['same_camera_share_of_gallery']}) |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--only', type=lambda s: [x for x in s.split(',') if x], default=list(EXPERIMENTS),
                   help='comma-separated groups, run in this order')
    p.add_argument('--out', default=str(Path(__file__).parent.parent / 'nbs' / 'experiments' / 'main_job_study.json'))
    p.add_argument('--threads', type=int, default=1, help='torch threads per run')
    p.add_argument('--jobs', type=int, default=2, help='runs at a time')
    p.add_argument('--table-only', action='store_true')
    a = p.parse_args(argv)
    bad = [g for g in a.only if g not in EXPERIMENTS]
    if bad: p.error(f'unknown group(s) {bad}; choose among {list(EXPERIMENTS)}')
    out = Path(a.out); res = load_results(out)
    if not a.table_only:
        import torch
        from fastreid_vehicle.pipeline import MAIN_JOB
        res['meta'] = dict(recipe=json.loads(json.dumps(MAIN_JOB, default=list)), threads=a.threads, jobs=a.jobs,
                           torch=torch.__version__, python=platform.python_version(),
                           machine=f'{platform.machine()}, {os.cpu_count()} cores')
        done = {r['key'] for r in res['runs']}
        todo = [(g, l, o) for g in a.only for l, o in EXPERIMENTS[g] if key(l, o, 0) not in done]
        # data first, in this process: concurrent runs must not generate the same tree twice
        from fastreid_vehicle.synthetic import synthesize_veri
        for _, _, o in todo:
            r = recipe(o); synthesize_veri(preset=r['preset'], seed=0, n_workers=2, **r['synth'])
        with ProcessPoolExecutor(a.jobs) as ex:
            futs = [(g, l, o, ex.submit(run_one, l, o, a.threads)) for g, l, o in todo]
            for g, l, o, fu in futs:
                r = fu.result(); r.update(group=g, key=key(l, o, 0))
                res['runs'].append(r); save_results(res, out)
                print(f"[{time.strftime('%H:%M:%S')}] {g}: {l}: mAP {r['after_cosine']['mAP']:.3f} "
                      f"(lookup {r['lookup']['mAP']:.3f}) in {r['train_seconds']:.0f} s", flush=True)
    print_table(res)


if __name__ == '__main__':
    main()
