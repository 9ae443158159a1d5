"""Tries at the main job's accuracy target (issue 18 item 7): the main job itself (`pipeline.train`, what
`fastreid-vehicle demo` runs) with a few settings changed, one run per try, scored by the standard protocol.

    python benchmarks/main_job_tries.py NAME [SETTING=VALUE ...] [--patch norm05|lighting=0.2] [--threads 1]
    python benchmarks/main_job_tries.py --table

`SETTING=VALUE` are `train()` settings (`P=4`, `soft_margin=true`, `pool=gem`; values are read as JSON where they
parse). Two tries change code the settings cannot reach, by patching the data module for that run only:
`--patch norm05` normalises with mean = std = 0.5 (what `tf_efficientnet_lite0`'s TF weights were trained with)
instead of ImageNet's statistics, `--patch lighting=M` adds fastai's `Brightness` and `Contrast` (max_lighting M,
p 0.75) to the training batches. Every try runs in fp32 (`FASTREID_VEHICLE_CPU_BF16=0`, standing for a CPU without
native bf16) with per-epoch validation, as the main job does; each result (the settings in full, rank-1, mAP, mINP,
the training seconds, the load average) is appended to `benchmarks/main_job_tries.json` (temporary file + rename).
Times are comparable only between runs made side by side under the same load; the accuracy does not depend on it.
"""
import argparse, json, os, platform, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_model                               # noqa: E402
from method_comparison import load_results, save_results   # noqa: E402

OUT = Path(__file__).parent/'main_job_tries.json'

def parse_value(v:str):
    "A command-line value: JSON where it parses (`4`, `true`, `[64, 64]`), else the text."
    try: return json.loads(v)
    except ValueError: return v

def apply_patch(patch:str|None):
    "Patch `fastreid_vehicle.data` for this process: 'norm05' or 'lighting=M' (see the module docstring)."
    if not patch: return
    import fastreid_vehicle.data as D
    name, _, arg = patch.partition('=')
    if name == 'norm05': D.imagenet_stats = ([.5] * 3, [.5] * 3)
    elif name == 'lighting':
        from fastai.vision.augment import Brightness, Contrast
        orig, m = D.reid_tfms, float(arg)
        def reid_tfms(*a, **k):
            item, batch = orig(*a, **k)
            return item, [Brightness(max_lighting=m, p=.75), Contrast(max_lighting=m, p=.75)] + batch
        D.reid_tfms = reid_tfms
    else: raise SystemExit(f"--patch: unknown patch {patch!r}; use norm05 or lighting=M")

def run_try(name:str, settings:dict, patch:str|None, threads:int|None, out_dir:Path) -> dict:
    os.environ['FASTREID_VEHICLE_CPU_BF16'] = '0'
    apply_patch(patch)
    from fastreid_vehicle.pipeline import train
    r = train(out=str(out_dir/name), progress=False, overwrite=True, threads=threads, **settings)
    return dict(name=name, changed=settings, patch=patch, rank1=r['rank1'], mAP=r['mAP'], mINP=r['mINP'],
                lookup=r['baselines'].get('lookup'), train_seconds=r['train_seconds'],
                settings=r['settings'], threads=threads, loadavg_1min=round(os.getloadavg()[0], 2), machine=cpu_model(),
                finished=time.strftime('%Y-%m-%d %H:%M:%S'))

def print_table(res:dict):
    print('| try | changed | rank-1 | mAP | mINP | train s | load |\n|---|---|---|---|---|---|---|')
    for r in res['runs']:
        ch = ', '.join(f'{k}={v}' for k, v in r['changed'].items()) + (f" (patch {r['patch']})" if r['patch'] else '')
        print(f"| {r['name']} | {ch or 'none'} | {r['rank1']:.4f} | {r['mAP']:.4f} | {r['mINP']:.4f} | "
              f"{r['train_seconds']:.0f} | {r['loadavg_1min']} |")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('name', nargs='?', help="the try's name (its run folder and its row)")
    p.add_argument('settings', nargs='*', help='SETTING=VALUE changes of the main job')
    p.add_argument('--patch', help="norm05 or lighting=M")
    p.add_argument('--threads', type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument('--out', default=str(OUT))
    p.add_argument('--runs', default='runs/main_job_tries', help='where the tries write their run folders')
    p.add_argument('--table', action='store_true', help='only print the table of the results file')
    a = p.parse_args(argv)
    res = load_results(Path(a.out)) or {'runs': [], 'meta': {}}
    if a.table: return print_table(res)
    if not a.name: p.error('give a NAME (or --table)')
    bad = [s for s in a.settings if '=' not in s]
    if bad: p.error(f'settings are SETTING=VALUE, got {bad}')
    settings = {k: parse_value(v) for k, v in (s.split('=', 1) for s in a.settings)}
    r = run_try(a.name, settings, a.patch, a.threads, Path(a.runs))
    res = load_results(Path(a.out)) or {'runs': [], 'meta': {}}   # re-read: another try may have finished meanwhile
    res['runs'].append(r); res['meta'] = dict(python=platform.python_version(), machine=cpu_model())
    save_results(res, Path(a.out))
    print(json.dumps({k: r[k] for k in ('name', 'rank1', 'mAP', 'mINP', 'train_seconds')}))

if __name__ == '__main__': main()
