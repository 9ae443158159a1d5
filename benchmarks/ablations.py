"""Ablations that test each paper's claims (issue 18 item 4) on a synthetic setting where the cues exist.

    python benchmarks/ablations.py [--seeds 0,1,2] [--out nbs/experiments/ablations.json] [--threads 1] [--jobs 1]
    python benchmarks/ablations.py --table-only --out nbs/experiments/ablations.json      # just print the tables

The data is the synthetic preset `bands` (`fastreid_vehicle.synthetic.SYNTH_PRESETS`): `small`'s look with fewer
vehicles, 96 px images and 4 *band marks* -- every vehicle wears the same four colours, one per height band, in an
order of its own, so only a feature that knows heights can use them (MFG-Net's claim), while colour and type are
shared by several vehicles (they help but do not decide: ANet's claim). Rows (`CONFIGS`):
- the baseline (Bag of Tricks, `bot`);
- MFG-Net with 1, 2, 3, 4 and 6 stripes (paper Table 3; the 96 x 64 input gives a 6 x 4 feature map);
- MFG-Net (4 stripes) with one component off (paper Table 4): the global branch's 1x1 convs (`global_conv=False`),
  the channel attention (`cam=None`), the local branch (`local=False`);
- ANet with and without the Joint Module (`joint=False`: J = F), each before and after the second stage
  (`AmeliorationStage`, +`stage2` epochs at lr/10), paper Table 1;
beside the colour + type lookup and chance on the same split (`evaluation.baseline_results`), and a lookup that also
knows the mark order (what the marks alone are worth).

Every run is `method_comparison.train_run` (same machinery, same results file format, resumable): the main job's
recipe (`pipeline.MAIN_JOB`, fp32) with the data, size, batch and epochs of `RECIPE`, evaluated by the standard
protocol (no camera centring, no flip). The runs go seed by seed (all rows of seed 0 first), so a cut-short run
leaves whole seeds. Each record also holds, from the same test pass, the mAP of each branch (MFG-Net: the global
feature, the local stripes together and each stripe; ANet: f beside j) and the mean training loss of each epoch.
"""
import argparse, json, statistics, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import method_comparison as mc   # noqa: E402

# What the ablations change in the main job's recipe: short runs (about 4 minutes each on one loaded CPU thread)
RECIPE = dict(preset='bands', synth={}, size=(96, 64), P=4, K=4, epochs=3)
STAGE2 = 2   # ANet's second-stage epochs (at lr / 10)
OUT = 'nbs/experiments/ablations.json'

def mfgnet_spec(**kw):
    "The run spec of an MFG-Net ablation: 4 stripes, no second stage, changed by `kw`."
    return dict(method='mfgnet', n_stripes=4, stage2=0) | kw

def _anet(**kw): return dict(method='anet', stage2=0) | kw

# (group, label, spec), in the order each seed trains them: the headline rows first
CONFIGS = [
    ('reference', 'baseline (BoT)', dict(method='bot', stage2=0)),
    ('mfgnet components', 'MFG-Net (4 stripes, all components)', mfgnet_spec()),
    ('anet', 'ANet, without stage 2', _anet()),
    ('anet', f'ANet, with stage 2 (+{STAGE2} ep)', _anet(stage2=STAGE2)),
    ('mfgnet components', 'MFG-Net without the local branch', mfgnet_spec(local=False)),
    ('anet', 'ANet without the Joint Module, without stage 2', _anet(joint=False)),
    ('anet', f'ANet without the Joint Module, with stage 2 (+{STAGE2} ep)', _anet(joint=False, stage2=STAGE2)),
] + [('mfgnet stripes', f'MFG-Net {n} stripe{"s" * (n > 1)}', mfgnet_spec(n_stripes=n)) for n in (1, 2, 6, 3)] + [
    ('mfgnet components', 'MFG-Net without channel attention', mfgnet_spec(cam=None)),
    ('mfgnet components', 'MFG-Net without the global 1x1 convs', mfgnet_spec(global_conv=False)),
]

REF_NAMES = {'lookup': 'colour + type lookup', 'chance': 'chance'}   # the reference rankings' names in the tables
TABLE_ORDER = ['reference', 'mfgnet stripes', 'mfgnet components', 'anet']


def table_configs() -> list:
    "`CONFIGS` in the tables' order (the 4-stripe MFG-Net in both MFG-Net tables)."
    stripes = [c for c in CONFIGS if c[0] == 'mfgnet stripes'] + [('mfgnet stripes', 'MFG-Net 4 stripes', mfgnet_spec())]
    return [c for g in TABLE_ORDER for c in (sorted(stripes, key=lambda c: c[2]['n_stripes']) if g == 'mfgnet stripes'
                                              else [c for c in CONFIGS if c[0] == g])]


# ------------------------------------------------------------------ the probe: branch mAP and loss curve
def _epoch_losses(learn) -> list:
    """Mean training loss of each epoch of the last fit (the recorder's smoothed per-batch losses; read them before a
    `get_preds`, whose `before_fit` clears them)."""
    ls, n = [float(x) for x in learn.recorder.losses], len(learn.dls.train)
    return [round(statistics.mean(ls[i:i + n]), 4) for i in range(0, len(ls), n)] if n else []


class BranchProbe:
    "Made before the test pass (hooks ANet's backbone to keep F); called after it: per-branch mAP and the loss curve."
    def __init__(self, learn):
        self.learn, self.maps, self.hook, self.losses = learn, [], None, _epoch_losses(learn)
        if hasattr(learn.model, 'f_head'):   # ANet: f = f_head(F), from the same pass that gives j
            self.hook = learn.model.backbone.register_forward_hook(lambda m, i, o: self.maps.append(o.detach()))

    def __call__(self, items, feats, cfg) -> dict:
        try: out = self._measure(items, feats, cfg)
        except Exception as e: out = {'probe_error': repr(e)}   # keep the run's own numbers
        return dict(out, epoch_losses=self.losses)

    def _measure(self, items, feats, cfg) -> dict:
        import torch, torch.nn.functional as F
        from fastreid_vehicle.evaluation import evaluate_features
        m, out = self.learn.model, {}
        ev = lambda f: round(float(evaluate_features(items, f, cfg, model=m).mAP), 4)
        if self.hook is not None:
            self.hook.remove()
            with torch.no_grad():
                f = torch.cat([m.f_head(x)[0 if m.neck_feat == 'before' else 1] for x in self.maps])
            out = {'f (VAN head)': ev(F.normalize(f.float(), dim=1)), 'j (test feature)': ev(feats)}
        elif hasattr(m, 'local_heads'):   # MFG-Net: its test feature is cat(global, stripe 1, ..., stripe n)
            dims = [m.global_head.dim] + [h.dim for h in m.local_heads]
            parts = torch.split(torch.as_tensor(feats), dims, dim=1)
            out = {'global': ev(parts[0])}
            if len(parts) > 1:
                out['local (all stripes)'] = ev(torch.cat(parts[1:], 1))
                out.update({f'stripe {k}': ev(p) for k, p in enumerate(parts[1:], 1)})
        return {'branch_mAP': out}


# ------------------------------------------------------------------ reference rankings on the same split
def reference_results(seeds) -> dict:
    "mAP / rank-1 of chance, the colour + type lookup and the lookup that also knows the mark order, per tie-break seed."
    import pandas as pd
    from fastreid_vehicle.all import load_veri776, synthesize_veri, synth_config, band_marks
    from fastreid_vehicle.evaluation import baseline_results, evaluate_features, baseline_embeddings
    cfg = synth_config(RECIPE['preset'], **RECIPE['synth'])
    df = load_veri776(synthesize_veri(preset=RECIPE['preset'], **RECIPE['synth']))
    items = df[df['split'].isin(['query', 'gallery'])].reset_index(drop=True)
    items['marks'] = [str(band_marks(cfg, 0, int(p))) for p in items['pid']]
    out = {}
    for s in seeds:
        b = baseline_results(items, seed=s)
        b['colour + type + mark order'] = evaluate_features(items, baseline_embeddings(items, 'lookup', ('color', 'type', 'marks'), s),
                                                            protocol='plain', distance='euclidean')
        for k, r in b.items(): out.setdefault(k, []).append(dict(seed=s, mAP=float(r.mAP), rank1=float(r.rank1)))
    ct = items.drop_duplicates('pid').groupby(['color', 'type']).size()
    return dict(results=out, test_ids=int(items['pid'].nunique()), queries=int((items['split'] == 'query').sum()),
                gallery=int((items['split'] == 'gallery').sum()),
                ids_per_colour_type=dict(mean=round(float(ct.mean()), 2), max=int(ct.max()),
                                         share_of_ids_sharing=round(float(ct[ct > 1].sum() / ct.sum()), 3)))


# ------------------------------------------------------------------ tables
def print_tables(res:dict, a):
    r = mc.recipe(a)
    print(f"\n{r['backbone']} (ImageNet), {tuple(r['size'])}, P{r['P']}xK{r['K']}, {r['epochs']} epochs, synthetic "
          f"'{r['preset']}'; mean ± std over seeds (%), train seconds per run\n")
    print('| group | configuration | seeds | rank-1 | mAP | mINP | train s |')
    print('|---|---|---|---|---|---|---|')
    for row in mc.summary_rows(res, a, table_configs()):
        print(f"| {row['group']} | {row['config']} | {row['seeds']} | {row['rank1']} | {row['mAP']} | {row['mINP']} | {row['train_s']} |")
    ref = res.get('meta', {}).get('reference', {}).get('results', {})
    for k, rs in ref.items():
        print(f"| reference | {REF_NAMES.get(k, k)} (no training) | {len(rs)} | {mc.mean_std([x['rank1'] for x in rs])} | "
              f"{mc.mean_std([x['mAP'] for x in rs])} | | |")
    by_key = {x['key']: x for x in res['runs']}
    print('\nmAP of each branch of the test feature, from the same test pass (mean ± std over seeds, %)\n')
    print('| configuration | seeds | branch mAP |')
    print('|---|---|---|')
    for g, label, spec in table_configs():
        rs = [by_key[k] for s in a.seeds if (k := mc.run_key(spec, s, a)) in by_key]
        if not rs or not rs[0].get('branch_mAP') or (g == 'mfgnet stripes' and spec == mfgnet_spec()): continue
        names = list(rs[0]['branch_mAP'])
        cells = ', '.join(f"{n} {mc.mean_std([x['branch_mAP'][n] for x in rs])}" for n in names)
        print(f'| {label} | {len(rs)} | {cells} |')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=lambda s: [int(x) for x in s.split(',') if x], default=[0, 1, 2])
    p.add_argument('--jobs', type=int, default=1, help='runs trained at a time (one process each)')
    p.add_argument('--out', default=OUT)
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads per run')
    p.add_argument('--table-only', action='store_true', help='only print the tables of the results file')
    a = p.parse_args(argv)
    a.epochs, a.only = None, []
    from fastreid_vehicle.pipeline import MAIN_JOB
    a.recipe = dict(MAIN_JOB, **RECIPE)
    return a


if __name__ == '__main__':
    a = parse_args()
    out = Path(a.out)
    if a.table_only: res = mc.load_results(out)
    else:
        res = mc.load_results(out)
        meta = res.get('meta', {})
        if sorted(x['seed'] for x in meta.get('reference', {}).get('results', {}).get('chance', [])) != sorted(a.seeds):
            meta = dict(meta, reference=reference_results(a.seeds))
        res = mc.run_all(a, [c for c in CONFIGS], probe=BranchProbe, seed_major=True,
                         meta=dict(benchmark="synthetic VeRi 'bands' (issue 18 ablations)", reference=meta['reference'],
                                   stage2_epochs=STAGE2, groups=TABLE_ORDER, configs=[[g, l, s] for g, l, s in CONFIGS]))
    print_tables(res, a)
