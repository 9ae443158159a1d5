"""What each paper recipe costs, estimated from a small measurement (no GPU needed): for each recipe's model at the
recipe's image size, one forward + backward pass of a batch of 8 on the CPU (seconds per image), its FLOPs per image
(torch's FlopCounterMode) and the activations saved for the backward pass per image (saved-tensor hooks, fp32).

    python docs/recipe_cost_estimate.py docs/recipe_cost_cpu.json [RECIPE ...]   # measure (minutes per recipe on 2 cores)
    python docs/recipe_cost_estimate.py docs/recipe_cost_cpu.json --table   # the estimate table of docs/pages/expect.md

Recipes already in the file are not measured again; a recipe not measured takes the figures of its method's measured
recipe (the same network; only the classifiers' sizes differ). The table scales these to the whole recipe (training images x epochs) and to a GPU under the assumptions printed
with it; it is an estimate, to be replaced by measured GPU numbers when there are some."""
import time, json, sys
from pathlib import Path
from fastreid_vehicle.recipes import RECIPES
N_IDS = {'veri776': 576, 'vehicleid': 13134, 'vric': 2811, 'veriwild': 30671}
ATTRS = {'veri776': {'color': 10, 'type': 9}, 'vehicleid': {'color': 7, 'model': 250}, 'veriwild': {'color': 12, 'type': 14}}
TRAIN_IMAGES = {'veri776': 37_778, 'vehicleid': 110_178, 'vric': 54_808, 'veriwild': 277_797}   # the training split of each release
GPU_TFLOPS = 20   # assumed sustained training throughput of one current GPU in fp16 autocast (A100 class), TFLOP/s
CONTEXT_GB = 1.0  # CUDA context, cuDNN workspace and allocator slack (assumed)

def measure(path, only=()):
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from fastreid_vehicle.models import create_reid_model, reid_loss, method_settings
    torch.set_num_threads(2); torch.manual_seed(0)
    out = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    for name, r in RECIPES.items():
        if name in out or (only and name not in only): continue
        a = r.args; ms = method_settings(a['method'])
        mk = {k: v for k, v in a.items() if k in ms['model']}; lk = {k: v for k, v in a.items() if k in ms['loss']}
        attrs = {k: ATTRS.get(r.dataset, {'color': 10, 'type': 9})[k] for k in a.get('attrs', ())} or None
        if a['method'] == 'anet': lk.setdefault('attr_names', list(attrs))
        model = create_reid_model(a['method'], n_ids=N_IDS[r.dataset], attr_classes=attrs, backbone=a['backbone'], pretrained=False, **mk)
        loss = reid_loss(a['method'], **lk)
        B = 8; h, w = a['size']
        x = torch.randn(B, 3, h, w); y = torch.arange(B) // 4
        ys = (y,) + tuple(torch.zeros(B, dtype=torch.long) for _ in (attrs or {}))
        model.train()
        def step():
            p = model(x); l = loss(p, *ys); l.backward(); model.zero_grad(set_to_none=True)
        step()
        fc = FlopCounterMode(display=False)
        with fc: step()
        saved = {}
        def pack(t):
            try: saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            except Exception: pass
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            p = model(x); l = loss(p, *ys)
        l.backward(); model.zero_grad(set_to_none=True)
        ts = []
        for _ in range(3):
            t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
        n_par = sum(p.numel() for p in model.parameters())
        out[name] = dict(size=[h, w], batch=B, s_per_img=min(ts) / B, gflops_per_img=fc.get_total_flops() / B / 1e9,
                         act_mb_per_img=sum(saved.values()) / B / 2**20, params_m=n_par / 1e6)
        print(name, out[name], flush=True)
        Path(path).write_text(json.dumps(out, indent=1))

def table(path) -> str:
    "The estimate table of the 'What to expect' page, from the measurement file `path`."
    from fastreid_vehicle.models import create_reid_model, method_settings
    m = json.loads(Path(path).read_text())
    rows = ['| recipe | image size, batch (P x K) | epochs | GPU time (est.) | GPU memory, fp16 (est.) | images trained | GFLOP / image | activations / batch (fp32) | CPU time here |',
            '|' + '---|' * 9]
    for name, r in RECIPES.items():
        a = r.args
        c = m.get(name) or next((v for k, v in m.items() if k.split('-')[0] == r.method), None)   # same network, other classifiers
        B, E = a['P'] * a['K'], a['epochs'] + (a.get('stage2_epochs') or 0)
        n = TRAIN_IMAGES[r.dataset] * E
        if c is None:
            rows.append(f"| `{name}` | {a['size'][0]}x{a['size'][1]}, {B} ({a['P']} x {a['K']}) | {E} | not measured |  | {n/1e6:.1f} M |  |  |  |")
            continue
        ms = method_settings(a['method'])
        attrs = {k: ATTRS.get(r.dataset, {'color': 10, 'type': 9})[k] for k in a.get('attrs', ())} or None
        params = sum(p.numel() for p in create_reid_model(a['method'], n_ids=N_IDS[r.dataset], attr_classes=attrs, backbone=a['backbone'],
                     pretrained=False, **{k: v for k, v in a.items() if k in ms['model']}).parameters())
        gpu_h = n * c['gflops_per_img'] * 1e9 / (GPU_TFLOPS * 1e12) / 3600
        cpu_days = n * c['s_per_img'] / 86400
        act = c['act_mb_per_img'] * B / 1024
        mem = act / 2 + params * 4 * 5 / 2**30 + CONTEXT_GB   # fp16 activations; fp32 weights, grads, 3 AMSGrad states
        rows.append(f"| `{name}` | {a['size'][0]}x{a['size'][1]}, {B} ({a['P']} x {a['K']}) | {a['epochs']}{' + ' + str(a['stage2_epochs']) if a.get('stage2_epochs') else ''} | "
                    f"{gpu_h:.1f} h | {mem:.0f} GB | {n/1e6:.1f} M | {c['gflops_per_img']:.0f} | {act:.1f} GB | {cpu_days:,.0f} days |")
    return '\n'.join(rows)

if __name__ == '__main__':
    if '--table' in sys.argv: print(table(sys.argv[1]))
    else: measure(sys.argv[1], sys.argv[2:])
