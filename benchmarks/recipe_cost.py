"""What each paper recipe costs to train: compute per image, memory, and the data pipeline's throughput per CPU core.

For every recipe of `fastreid_vehicle.recipes.RECIPES`, at the recipe's own image size, backbone, method settings,
number of identities (the dataset's) and optimiser (with its constants):

- **compute**: one training step (forward + loss + backward + optimiser step) on a small batch (`--batch`, default
  8 = 2 identities x 4 images; `pretrained=False`, so nothing is downloaded), timed `--repeats` times after a warm-up
  step (on the CPU, the process's CPU time with 1 thread, one core's work, which a busy shared machine inflates less
  than wall time; the precision is what `amp='auto'` picks there); the median per image is scaled to the recipe's batch, epoch (the dataset's training images) and full schedule
  (`epochs + stage2_epochs`; stage 2 is counted at stage-1 cost, an upper bound since it freezes the backbone).
  Everything scaled is marked as an estimate.
- **memory**: each recipe runs in its own process; the peak resident memory of that process after the steps, plus
  the activations autograd keeps per image (summed over the saved tensors of one forward) times the images the
  recipe's batch adds: an estimate of the peak at the recipe's per-process batch.
- **data**: decode + augment images/s on one CPU core: the library's training loader (`ReidDataLoaders.from_df`,
  the recipe's size and augmentation, no preloading, no workers, `torch` on 1 thread) over synthetic JPEGs of
  `--jpeg-size` pixels.

`--device cuda` times the step at the recipe's per-process batch (the global batch split over `--processes`, as
`train` splits it) in the precision `amp='auto'` picks there (fp16 autocast with a gradient scaler), and reports
`torch.cuda.max_memory_allocated`: measured, not estimated. The table starts with the machine, torch's version and
the threads.

- **FLOPs and the GPU estimate**: the FLOPs of one step per image (torch's `FlopCounterMode`: forward + backward) and,
  from them, an **estimate** for a machine without a GPU: the full recipe's time on one GPU sustaining `GPU_TFLOPS`
  (20 TFLOP/s in fp16 autocast, an A100-class GPU with a data pipeline that keeps up) and its GPU memory (activations
  halved by fp16 autocast, fp32 weights with their gradients and three AMSGrad states, `CONTEXT_GB` for the CUDA
  context). `--docs-json docs/recipe_cost_cpu.json` records each recipe's figures in the file the docs page "What to
  expect" reads (its table: `--docs-table docs/recipe_cost_cpu.json`); a recipe not in the file takes the figures of
  its method's measured recipe (the same network; only the classifiers' sizes differ).

    python benchmarks/recipe_cost.py --threads 1 --repeats 3 --docs-json docs/recipe_cost_cpu.json   # CPU, every recipe
    python benchmarks/recipe_cost.py --recipes mfgnet-vric --quick --docs-json cost.json   # one step, no data pass
    python benchmarks/recipe_cost.py --docs-table docs/recipe_cost_cpu.json   # the docs page's table, measuring nothing
    python benchmarks/recipe_cost.py --recipes anet-veri776 --device cuda --processes 8
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # the other benchmark scripts, however this one is loaded
from machine import cpu_model

# training images and identities of each dataset's training split (the official releases; /work/shared/notes/datasets.md)
TRAIN_SPLITS = {'veri776': (37778, 576), 'vehicleid': (110178, 13164), 'vric': (54808, 2811), 'veriwild': (277797, 30671)}
GPU_TFLOPS = 20   # assumed sustained training throughput of one current GPU in fp16 autocast (A100 class), TFLOP/s
CONTEXT_GB = 1.0  # CUDA context, cuDNN workspace and allocator slack (assumed)

def _rss_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def recipe_parts(name:str) -> dict:
    "What the cost depends on: method, backbone, size, batch, model and loss settings, optimiser, schedule, dataset size"
    from fastreid_vehicle.config import build_settings
    from fastreid_vehicle.learner import split_settings
    s = build_settings(name)
    mk, lk = split_settings(s.model.method, s.model.settings)
    n_img, n_ids = TRAIN_SPLITS[s.data.dataset]
    return dict(method=s.model.method, backbone=s.model.backbone, size=tuple(s.data.size), P=s.data.P, K=s.data.K,
                model_kwargs=mk, loss_kwargs=lk, fit=s.fit, attrs=tuple(s.data.attrs), neck_feat=s.model.neck_feat,
                train_images=n_img, n_ids=n_ids, epochs=s.fit.epochs + s.fit.stage2_epochs)

def _saved_bytes(model, loss_func, x, ys) -> int:
    "Bytes of the tensors autograd keeps for backward in one forward + loss (each storage counted once)"
    import torch
    seen = {}
    def pack(t):
        try: key = (t.untyped_storage().data_ptr(), t.device)
        except Exception: key = (id(t), t.device)
        seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_func(model(x), *ys)
    loss.backward()
    return sum(seen.values())

def recipe_model(r:dict, device:str='cpu'):
    "The recipe's network (`recipe_parts`), `pretrained=False`, with its attribute heads, and its attribute sizes"
    from fastreid_vehicle.models import create_reid_model
    from fastreid_vehicle.readers import VERI_COLORS, VERI_TYPES
    attrs = dict(zip(r['attrs'], (len(VERI_COLORS), len(VERI_TYPES))))   # attribute heads: a few classes, cost negligible
    return create_reid_model(r['method'], n_ids=r['n_ids'], attr_classes=attrs, backbone=r['backbone'],
                             pretrained=False, neck_feat=r['neck_feat'], **r['model_kwargs']).to(device), attrs

def gpu_estimate(gflops_per_image:float, act_mb_per_image:float, params:float, batch:int, images:int) -> tuple:
    "Estimated (hours, GB) of training `images` images on one GPU at `GPU_TFLOPS`, batches of `batch` (the docstring's assumptions)"
    hours = images * gflops_per_image * 1e9 / (GPU_TFLOPS * 1e12) / 3600
    gb = act_mb_per_image * batch / 1024 / 2 + params * 4 * 5 / 2**30 + CONTEXT_GB   # fp16 activations; fp32 weights, grads, 3 AMSGrad states
    return hours, gb

def measure(name:str, batch:int, repeats:int, device:str, processes:int) -> dict:
    "One recipe's training-step cost in this process (see the module's docstring)"
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from fastai.basics import to_float
    from fastreid_vehicle.config import split_batch
    from fastreid_vehicle.models import reid_loss, reid_splitter
    from fastreid_vehicle.pipeline import _opt_func
    from fastreid_vehicle.callbacks import resolve_precision
    r = recipe_parts(name)
    split = split_batch(r['P'], r['K'], processes)
    K = r['K']
    bs = split['batch_per_process'] if device == 'cuda' else batch
    torch.manual_seed(0)
    model, attrs = recipe_model(r, device)
    model.train()
    loss_func = reid_loss(r['method'], **({'attr_names': list(attrs)} if r['method'] == 'anet' else {}), **r['loss_kwargs'])
    opt = _opt_func(r['fit'])(reid_splitter(model), lr=r['fit'].lr, wd=r['fit'].wd)
    precision = resolve_precision('auto', device)[0]
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler('cuda', enabled=precision == 'fp16')
    x = torch.randn(bs, 3, *r['size'], device=device)
    ys = (torch.arange(bs // K, device=device).repeat_interleave(K), torch.randint(0, 10, (bs,), device=device) % attrs.get('color', 1),
          torch.randint(0, 9, (bs,), device=device) % max(attrs.values(), default=1))
    def step():
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_func(to_float(model(x)), *ys)
        scaler.scale(loss).backward()   # fp16: the loss scaled as GradScaler does (the unscale's cost is negligible)
        opt.step(); opt.zero_grad()
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    if device == 'cuda': torch.cuda.reset_peak_memory_stats()
    step(); sync()   # warm-up (allocations, kernels)
    with FlopCounterMode(display=False) as fc: step()   # FLOPs of forward + backward (the optimiser's are negligible)
    sync()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        step(); sync()
        times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    # on the CPU the process's CPU time (1 thread: one core's work), robust to a shared, busy machine; on CUDA the wall time
    sec = statistics.median(cpu if device == 'cpu' else times)
    out = dict(recipe=name, method=r['method'], backbone=r['backbone'], size=r['size'], global_batch=split['batch'],
               processes=processes, batch_per_process=split['batch_per_process'], measured_batch=bs, precision=precision,
               step_seconds=times, step_cpu_seconds=cpu, s_per_image=sec / bs, train_images=r['train_images'], epochs=r['epochs'],
               gflops_per_image=fc.get_total_flops() / bs / 1e9, params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    if device == 'cuda':
        out.update(peak_mb=torch.cuda.max_memory_allocated() / 2**20, memory='measured')
    else:
        peak = _rss_mb()
        act = _saved_bytes(model, loss_func, x, ys) / bs / 2**20
        out.update(peak_mb_measured=peak, activations_mb_per_image=act,
                   peak_mb=peak + act * (split['batch_per_process'] - bs), memory='estimate')
    return out

def data_throughput(name:str, n_images:int, jpeg_size:tuple, repeats:int) -> float:
    "Images per second on one core through the library's training loader: decode + the recipe's augmentation"
    import numpy as np, pandas as pd, torch
    from PIL import Image
    from fastreid_vehicle.data import ReidDataLoaders
    from fastreid_vehicle.config import build_settings
    d = build_settings(name).data
    tmp = Path(tempfile.mkdtemp(prefix='recipe_cost_'))
    rng = np.random.default_rng(0)
    rows, n_ids = [], max(4, n_images // 8)
    h, w = jpeg_size
    base = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)
    for i in range(n_images + 8):
        img = Image.fromarray(np.roll(base, i, axis=1)).resize((w, h), Image.BILINEAR)   # smooth photo-like content
        p = tmp/f'{i:05d}.jpg'; img.save(p, quality=90)
        split = 'train' if i < n_images else ('query' if i < n_images + 4 else 'gallery')
        rows.append(dict(path=str(p), pid=i % n_ids if split == 'train' else i % 4, camid=i % 5, split=split))
    df = pd.DataFrame(rows)
    dls = ReidDataLoaders.from_df(df, size=d.size, P=4, K=4, pad=d.pad, flip_p=d.flip_p, erase_p=d.erase_p,
                                  erase_mode=d.erase_mode, erase_sl=d.erase_sl, erase_sh=d.erase_sh,
                                  erase_min_aspect=d.erase_min_aspect, zoom_p=d.zoom_p, max_zoom=d.max_zoom,
                                  seed=0, device='cpu', attrs=(), preload=False)
    rates = []
    for _ in range(repeats + 1):
        t0, n = time.process_time(), 0   # CPU time of this one-thread process: one core's work
        for xb, *_ in dls.train: n += len(xb)
        rates.append(n / (time.process_time() - t0))
    return statistics.median(rates[1:])   # the first pass warms the caches

def _child(args):
    "Run in a fresh process: one recipe's compute, memory and data figures, printed as JSON"
    import torch
    torch.set_num_threads(args.threads)
    res = measure(args.child, args.batch, args.repeats, args.device, args.processes)
    torch.set_num_threads(1)
    res['data_img_per_s_per_core'] = None if args.quick else data_throughput(args.child, args.data_images, args.jpeg_size, args.repeats)
    print('RESULT ' + json.dumps(res, default=str))

def _fmt_time(s:float) -> str:
    if s < 120: return f'{s:.0f} s'
    if s < 7200: return f'{s / 60:.0f} min'
    if s < 2 * 86400: return f'{s / 3600:.1f} h'
    return f'{s / 86400:.0f} days'

def table(rows:list, device:str) -> str:
    "The user-facing markdown table: per image, per step, per epoch and per recipe (estimates marked `~`), memory, data rate"
    est = '~' if device == 'cpu' else ''
    head = ['recipe', 'size', 'batch (global = per process x processes)', 'precision',
            's / image (fwd+bwd' + (', 1 core)' if device == 'cpu' else ')'),
            f's / step{" (est.)" if est else ""}', 'train images', 's / epoch (est.)', 'full recipe (est.)',
            f'peak memory per process{" (est.)" if est else ""}', 'data: img/s per core', 'GFLOP / image',
            f'one GPU at {GPU_TFLOPS} TFLOP/s (est.)']
    out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        spi = r['s_per_image']
        epoch = spi * r['train_images'] // r['global_batch'] * r['global_batch']
        out.append('| ' + ' | '.join([
            f"`{r['recipe']}`", 'x'.join(map(str, r['size'])),
            f"{r['global_batch']} = {r['batch_per_process']} x {r['processes']}", r['precision'], f'{spi:.3f}',
            f"{est}{spi * r['batch_per_process']:.1f}", f"{r['train_images']:,}", f"{est}{_fmt_time(epoch)}",
            f"{est}{_fmt_time(epoch * r['epochs'])} ({r['epochs']} epochs)", f"{est}{r['peak_mb'] / 1024:.1f} GB",
            '-' if r.get('data_img_per_s_per_core') is None else f"{r['data_img_per_s_per_core']:.0f}",
            f"{r['gflops_per_image']:.0f}" if 'gflops_per_image' in r else '', _gpu_cell(r)]) + ' |')
    return '\n'.join(out)

def _gpu_cell(r:dict) -> str:
    "The GPU estimate of a measured row: the full recipe's time and memory at the recipe's global batch"
    if r.get('activations_mb_per_image') is None or 'gflops_per_image' not in r: return ''
    h, gb = gpu_estimate(r['gflops_per_image'], r['activations_mb_per_image'], r['params_m'] * 1e6, r['global_batch'],
                         r['train_images'] * r['epochs'])
    return f'~{h:.1f} h, ~{gb:.0f} GB'

def write_docs_json(rows:list, path):
    "Record CPU-measured `rows` in the docs' measurement file `path` (recipe -> figures), keeping the recipes not measured now"
    p = Path(path)
    out = json.loads(p.read_text()) if p.exists() else {}
    for r in rows:
        out[r['recipe']] = dict(size=list(r['size']), batch=r['measured_batch'], s_per_img=r['s_per_image'],
                                gflops_per_img=r['gflops_per_image'], act_mb_per_img=r['activations_mb_per_image'],
                                params_m=r['params_m'], precision=r['precision'])
    p.write_text(json.dumps(out, indent=1) + '\n')

def docs_table(path) -> str:
    "The estimate table of the docs page 'What to expect', from the measurement file `path` (`write_docs_json`)"
    from fastreid_vehicle.recipes import RECIPES
    m = json.loads(Path(path).read_text())
    rows = ['| recipe | image size, batch (P x K) | epochs | GPU time (est.) | GPU memory, fp16 (est.) | images trained | GFLOP / image | activations / batch (fp32) | CPU time here |',
            '|' + '---|' * 9]
    for name, rec in RECIPES.items():
        r = recipe_parts(name)
        c = m.get(name) or next((v for k, v in m.items() if k.split('-')[0] == rec.method), None)   # same network, other classifiers
        B, n = r['P'] * r['K'], r['train_images'] * r['epochs']
        shape = f"{r['size'][0]}x{r['size'][1]}, {B} ({r['P']} x {r['K']})"
        stage2 = r['fit'].stage2_epochs
        epochs = f"{r['fit'].epochs}{' + ' + str(stage2) if stage2 else ''}"
        if c is None:
            rows.append(f"| `{name}` | {shape} | {epochs} | not measured |  | {n/1e6:.1f} M |  |  |  |")
            continue
        params = sum(p.numel() for p in recipe_model(r)[0].parameters())
        gpu_h, mem = gpu_estimate(c['gflops_per_img'], c['act_mb_per_img'], params, B, n)
        rows.append(f"| `{name}` | {shape} | {epochs} | {gpu_h:.1f} h | {mem:.0f} GB | {n/1e6:.1f} M | {c['gflops_per_img']:.0f} | "
                    f"{c['act_mb_per_img'] * B / 1024:.1f} GB | {n * c['s_per_img'] / 86400:,.0f} days |")
    return '\n'.join(rows)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--recipes', nargs='*', help='recipe names (default: every recipe)')
    ap.add_argument('--device', default='cpu', choices=('cpu', 'cuda'), help='where the training step runs')
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads of the compute measurement')
    ap.add_argument('--batch', type=int, default=8, help='CPU: images per measured step (a multiple of K)')
    ap.add_argument('--processes', type=int, default=1, help="processes the global batch is split over (the per-process batch)")
    ap.add_argument('--repeats', type=int, default=3, help='timed steps (and data passes); the median is reported')
    ap.add_argument('--data-images', type=int, default=64, help='synthetic JPEGs in the data-pipeline measurement')
    ap.add_argument('--jpeg-size', type=lambda s: tuple(int(v) for v in s.split(',')), default=(240, 320),
                    help='height,width of the synthetic JPEGs (a typical surveillance crop)')
    ap.add_argument('--json', help='also write the rows to this JSON file')
    ap.add_argument('--table-from', help='print the table of rows saved by --json, measuring nothing')
    ap.add_argument('--docs-json', help="CPU: record the figures in this file, the one the docs page 'What to expect' reads")
    ap.add_argument('--docs-table', help="print the docs page's estimate table from this file (--docs-json), measuring nothing")
    ap.add_argument('--quick', action='store_true', help='one timed step of one identity (K images), no data-pipeline pass')
    ap.add_argument('--child', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child: return _child(args)
    if args.table_from: return print(table(json.loads(Path(args.table_from).read_text()), args.device))
    if args.docs_table: return print(docs_table(args.docs_table))
    if args.docs_json and args.device != 'cpu': sys.exit('--docs-json: the docs page estimates from a CPU measurement (--device cpu)')
    if args.quick: args.repeats = 1
    import torch
    from fastreid_vehicle.recipes import RECIPES
    names = args.recipes or list(RECIPES)
    if args.device == 'cuda' and not torch.cuda.is_available(): sys.exit('--device cuda: no CUDA device here')
    dev = torch.cuda.get_device_name() if args.device == 'cuda' else cpu_model()
    print(f"machine: {dev}; {os.cpu_count()} CPU cores; torch {torch.__version__}; threads {args.threads}; "
          f"python {platform.python_version()}")
    rows = []
    for n in names:   # one process per recipe: its peak memory is its own
        batch = recipe_parts(n)['K'] if args.quick else args.batch
        cmd = [sys.executable, __file__, '--child', n, '--device', args.device, '--threads', str(args.threads),
               '--batch', str(batch), '--processes', str(args.processes), '--repeats', str(args.repeats),
               '--data-images', str(args.data_images), '--jpeg-size', ','.join(map(str, args.jpeg_size))] + ['--quick'] * args.quick
        p = subprocess.run(cmd, capture_output=True, text=True)
        line = next((l for l in p.stdout.splitlines() if l.startswith('RESULT ')), None)
        if line is None:
            print(f'{n}: failed\n{p.stderr[-2000:]}'); continue
        r = json.loads(line[7:]); rows.append(r)
        if args.json: Path(args.json).write_text(json.dumps(rows, indent=1, default=str))   # each row as it comes
        if args.docs_json: write_docs_json([r], args.docs_json)
        print(f"{n}: steps {', '.join(f'{t:.2f}' for t in r['step_seconds'])} s wall, "
              f"{', '.join(f'{t:.2f}' for t in r['step_cpu_seconds'])} s CPU for {r['measured_batch']} images; "
              f"{r['gflops_per_image']:.0f} GFLOP/image" + ('' if args.quick else f"; data {r['data_img_per_s_per_core']:.0f} img/s"), flush=True)
    print(table(rows, args.device))

if __name__ == '__main__': main()
