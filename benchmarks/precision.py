"""CPU training throughput in fp32 and in bf16 autocast, channels-last off and on, for `train()`'s default recipe.

One training step = forward + loss + backward + optimiser step + zero_grad on a random batch of P*K images, as
`train()` runs it (`reid_learner`'s model, loss and fastai optimiser; autocast around forward and loss, as
`ReidMixedPrecision` does). The recipe (method, backbone, size, P, K, optimiser, lr) is read from the defaults of
`fastreid_vehicle.pipeline.train`, so the benchmark follows when they change; `--method/--backbone/--size` override them.
The four settings are timed in interleaved rounds (one step of each per round) so that they share the load of a busy
machine; the figure is the median over the rounds after `--warmup` untimed steps each. Threads: torch's default
(`--threads` to change). Also printed: the CPU, torch's capability level, the bf16 probe and what `amp='auto'` picks.

    python benchmarks/precision.py                       # train()'s defaults
    python benchmarks/precision.py --backbone tf_efficientnet_lite0 --size 128
"""
import argparse, inspect, os, platform, statistics, subprocess, sys, time
import torch
from fastai.basics import Adam, SGD, to_float
from fastreid_vehicle.pipeline import train
from fastreid_vehicle.learner import amsgrad
from fastreid_vehicle.callbacks import cpu_bf16_support, resolve_precision
from fastreid_vehicle.models import create_reid_model, reid_splitter
from fastreid_vehicle.models import reid_loss
from fastreid_vehicle.readers import VERI_COLORS, VERI_TYPES
from fastreid_vehicle.synthetic import synth_config
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # the other benchmark scripts, however this one is loaded
from machine import cpu_model

def train_defaults() -> dict:
    "The default arguments of `train()`."
    return {k: p.default for k, p in inspect.signature(train).parameters.items() if p.default is not inspect.Parameter.empty}

def _size(s): return (s, s) if isinstance(s, int) else tuple(int(v) for v in s)

def _parse_size(s:str): return _size(tuple(int(v) for v in s.split(',')) if ',' in s else int(s))

def make_step(method, backbone, size, P, K, n_ids, opt, lr, bf16:bool, channels_last:bool, seed=0):
    "A closure running one training step of the recipe in the given precision and memory format."
    torch.manual_seed(seed)
    attrs = {'color': len(VERI_COLORS), 'type': len(VERI_TYPES)}
    model = create_reid_model(method, n_ids=n_ids, attr_classes=attrs, backbone=backbone, pretrained=False).train()
    if channels_last: model = model.to(memory_format=torch.channels_last)
    loss_func = reid_loss(method, **({'attr_names': list(attrs)} if method == 'anet' else {}))
    opt = {'adam': Adam, 'amsgrad': amsgrad, 'sgd': SGD}[opt](reid_splitter(model), lr=lr, wd=5e-4)
    bs = P * K
    x = torch.randn(bs, 3, *size)
    ys = (torch.arange(P).repeat_interleave(K), torch.randint(0, attrs['color'], (bs,)), torch.randint(0, attrs['type'], (bs,)))
    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            pred = to_float(model(x))
            loss = loss_func(pred, *ys)
        loss.backward(); opt.step(); opt.zero_grad()
        return float(loss.detach())
    return step

def main(argv=None):
    d = train_defaults()
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--method', default=d['method']); ap.add_argument('--backbone', default=d['backbone'])
    ap.add_argument('--size', type=_parse_size, default=_size(d['size']), help='64 or 128,64 (h,w)')
    ap.add_argument('--P', type=int, default=d['P']); ap.add_argument('--K', type=int, default=d['K'])
    ap.add_argument('--steps', type=int, default=3, help='timed rounds'); ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's own)")
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    n_ids = synth_config(d['preset']).n_train_ids if d['dataset'] == 'synthetic' else 576
    bs = a.P * a.K
    info = cpu_bf16_support()
    auto, why = resolve_precision('auto', 'cpu')
    load0 = os.getloadavg()
    configs = [(bf16, cl) for cl in (False, True) for bf16 in (False, True)]
    steps = {c: make_step(a.method, a.backbone, a.size, a.P, a.K, n_ids, d['opt'], d['lr'], *c) for c in configs}
    for c in configs:
        for _ in range(a.warmup): steps[c]()
    times = {c: [] for c in configs}
    t_all = time.perf_counter()
    for _ in range(a.steps):
        for c in configs:
            t = time.perf_counter(); steps[c](); times[c].append(time.perf_counter() - t)
    wall = time.perf_counter() - t_all
    med = {c: statistics.median(v) for c, v in times.items()}
    ips = {c: bs / m for c, m in med.items()}
    print(f"CPU: {cpu_model()}, nproc {os.cpu_count()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"Python {platform.python_version()}")
    print(f"torch capability {info['capability']}, avx512_bf16 {info['avx512_bf16']}, amx_bf16 {info['amx_bf16']} "
          f"(from {info['source']}); native bf16 detected: {info['native']}; amp='auto' picks {auto} ({why})")
    print(f"recipe: method={a.method} backbone={a.backbone} size={a.size[0]}x{a.size[1]} batch={bs} (P={a.P} x K={a.K}) "
          f"opt={d['opt']} lr={d['lr']}; median of {a.steps} interleaved rounds after {a.warmup} warm-up steps "
          f"({wall:.0f} s timed); load average {load0[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    print('| channels_last | fp32 s/step | fp32 img/s | bf16 s/step | bf16 img/s | bf16/fp32 speed |')
    print('|---|---|---|---|---|---|')
    for cl in (False, True):
        f, b = (False, cl), (True, cl)
        print(f"| {'on' if cl else 'off'} | {med[f]:.3f} | {ips[f]:.1f} | {med[b]:.3f} | {ips[b]:.1f} | {ips[b] / ips[f]:.2f}x |")
    return ips

if __name__ == '__main__': main()
