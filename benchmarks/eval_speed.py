"""Speed, memory and agreement of `fastreid_vehicle.metrics` against fast-reid's evaluator (the peer).

    python benchmarks/eval_speed.py [--sizes 2k,small,large] [--regimes strong,weak] [--repeats 3] [--skip-py] [--out FILE.md]

The peer is the registry's `fastreid==1.4.0`, which does not install on Python 3.11 (it pins torch 1.13). Its
evaluator, `fastreid/evaluation/rank.py`, needs only numpy, and its Cython extension `rank_cylib/rank_cy.pyx` can be
built locally. So this script downloads the wheel (`pip download fastreid==1.4.0 --no-deps`), extracts those two
files into `benchmarks/.peer/` (ignored by git), builds the extension in a separate virtual environment
(`benchmarks/.peer/venv`: numpy + cython + setuptools; needs a C compiler) and runs the peer there in a subprocess.
Our environment stays untouched.

Inputs: 512-d features with a VeRi-Wild-like structure (one query per id, every id in the gallery with a skewed
number of images, each id seen by 2-8 of 174 cameras, so some same-camera junk and some queries without a valid
match). Two distance matrices on these ids and cameras, float32: *strong*, the cosine distances of the features
(true matches near the top of the ranking); *weak*, uniform random distances with the true matches shifted by -0.3
(true matches spread through the whole ranking, as with a model early in training or on a hard dataset). The true matches' and junk's distances are made tie-free (a handful of values
nudged by one ulp): with ties, fast-reid's unstable argsort makes its numbers arbitrary (ours break ties by gallery
index). Sizes: 2,000 x 10,000; 3,000 x 38,861 (VeRi-Wild small); 10,000 x 128,517 (VeRi-Wild large, ours only:
the peer argsorts the whole matrix, which does not fit in 24 GB).

Timings: the peer runs in a persistent subprocess and each repeat alternates ours / peer, so both see the same
machine load; min / median / max over the repeats, speed-up = peer median / ours median. Peak memory: peak RSS
(VmHWM of /proc/self/status) of a fresh subprocess running `evaluate_features` from the features (ours) or `evaluate_rank` on the
loaded distance matrix (peer).
"""
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time, zipfile
from pathlib import Path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # the other benchmark scripts, however this one is loaded
from machine import cpu_model

import numpy as np

HERE = Path(__file__).resolve().parent
PEER = HERE / '.peer'
PKG = PEER / 'pkg'
SIZES = {'2k': (2000, 10000), 'small': (3000, 38861), 'large': (10000, 128517)}
PEER_SIZES = ('2k', 'small')     # the peer cannot hold the large matrix and its argsort in 24 GB


# ------------------------------------------------------------------ peer installation
def setup_peer(python=None):
    "Download fastreid 1.4.0, extract its evaluator and build the Cython extension in benchmarks/.peer/venv"
    so = list((PKG / 'fr_peer' / 'rank_cylib').glob('rank_cy*.so'))
    if so and (PEER / 'venv' / 'bin' / 'python').exists(): return PEER / 'venv' / 'bin' / 'python'
    PEER.mkdir(exist_ok=True)
    (PEER / '.gitignore').write_text('*\n')
    dl = PEER / 'dl'
    if not list(dl.glob('fastreid-1.4.0*')):
        subprocess.run([sys.executable, '-m', 'pip', 'download', 'fastreid==1.4.0', '--no-deps', '-d', str(dl)],
                       check=True)
    archive = next(dl.glob('fastreid-1.4.0*'))
    dest = PKG / 'fr_peer' / 'rank_cylib'
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {'fastreid/evaluation/rank.py': PKG / 'fr_peer' / 'rank.py',
              'fastreid/evaluation/rank_cylib/rank_cy.pyx': dest / 'rank_cy.pyx'}
    if archive.suffix == '.whl':
        with zipfile.ZipFile(archive) as z:
            for src, dst in wanted.items(): dst.write_bytes(z.read(src))
    else:
        import tarfile
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                for src, dst in wanted.items():
                    if m.name.endswith(src): dst.write_bytes(t.extractfile(m).read())
    for p in (PKG / 'fr_peer' / '__init__.py', dest / '__init__.py'): p.touch()
    venv = PEER / 'venv'
    if not (venv / 'bin' / 'python').exists():
        base = python or getattr(sys, '_base_executable', None) or shutil.which('python3')
        subprocess.run([base, '-m', 'venv', str(venv)], check=True)
        subprocess.run([str(venv / 'bin' / 'pip'), 'install', '-q', 'numpy', 'cython', 'setuptools'], check=True)
    build = ("from setuptools import setup, Extension\nfrom Cython.Build import cythonize\nimport numpy\n"
             "setup(ext_modules=cythonize([Extension('rank_cy', ['rank_cy.pyx'], include_dirs=[numpy.get_include()])],"
             " language_level=3, quiet=True), script_args=['build_ext', '--inplace', '-q'])\n")
    subprocess.run([str(venv / 'bin' / 'python'), '-c', build], cwd=dest, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(dest / 'build', ignore_errors=True)
    return venv / 'bin' / 'python'


PEER_CHILD = r'''
import sys, time, json
import numpy as np
def status_kb(key): return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))
def hwm_kb(): return status_kb('VmHWM')
sys.path.insert(0, sys.argv[1])
from fr_peer.rank import evaluate_rank, IS_CYTHON_AVAI
assert IS_CYTHON_AVAI, "the peer's Cython extension did not build"
data = sys.argv[2]
d = np.load(f'{data}/dist.npy')
qp, gp, qc, gc = (np.load(f'{data}/{n}.npy') for n in ('qp', 'gp', 'qc', 'gc'))
print(json.dumps({'ready': True, 'base_kb': status_kb('VmRSS')}), flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd not in ('cy', 'py'): break
    t0 = time.perf_counter()
    cmc, all_AP, all_INP = evaluate_rank(d, qp, gp, qc, gc, max_rank=50, use_cython=cmd == 'cy')
    t = time.perf_counter() - t0
    np.save(f'{data}/peer_{cmd}_cmc.npy', np.asarray(cmc)); np.save(f'{data}/peer_{cmd}_ap.npy', np.asarray(all_AP))
    np.save(f'{data}/peer_{cmd}_inp.npy', np.asarray(all_INP))
    print(json.dumps({'time': t, 'maxrss_kb': hwm_kb()}), flush=True)
'''


class Peer:
    "fast-reid's evaluator in a persistent subprocess of the peer venv, one evaluation per request"
    def __init__(self, python, data):
        (PEER / 'peer_child.py').write_text(PEER_CHILD)
        self.p = subprocess.Popen([str(python), str(PEER / 'peer_child.py'), str(PKG), str(data)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.base_kb = json.loads(self.p.stdout.readline())['base_kb']
    def run(self, cmd='cy'):
        self.p.stdin.write(cmd + '\n'); self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())
    def close(self):
        self.p.stdin.write('quit\n'); self.p.stdin.flush(); self.p.wait()


# ------------------------------------------------------------------ inputs
def make_features(Q, G, n_cams=174, D=512, seed=0, cam_w=0.5, noise=2.0):
    "VeRi-Wild-like features: one query per id, skewed gallery counts, 2-8 cameras per id, camera bias + noise"
    rng = np.random.default_rng(seed)
    n_ids = Q
    w = rng.lognormal(0, 0.6, n_ids); w /= w.sum()
    gp = np.concatenate([np.arange(n_ids), rng.choice(n_ids, G - n_ids, p=w)]); rng.shuffle(gp)
    qp = rng.permutation(n_ids)
    k = rng.integers(2, 9, n_ids)
    id_cams = np.stack([rng.choice(n_cams, 8, replace=False) for _ in range(n_ids)])
    cam = lambda p: id_cams[p, (rng.random(len(p)) * k[p]).astype(np.int64)]
    qc, gc = cam(qp), cam(gp)
    centers = rng.standard_normal((n_ids, D), dtype=np.float32)
    cbias = rng.standard_normal((n_cams, D), dtype=np.float32)
    def feats(p, c):
        f = np.empty((len(p), D), np.float32)
        for s in range(0, len(p), 16384):   # in blocks: bounded temporary memory
            e = min(s + 16384, len(p))
            f[s:e] = centers[p[s:e]] + cam_w * cbias[c[s:e]] + noise * rng.standard_normal((e - s, D), dtype=np.float32)
        return f
    return feats(qp, qc), feats(gp, gc), qp.astype(np.int64), gp.astype(np.int64), qc.astype(np.int64), gc.astype(np.int64)


def untie(d, qp, gp):
    "Nudge (by one ulp) the distances of same-id gallery items that equal another distance of their row; returns count"
    order = np.argsort(gp, kind='stable'); sp = gp[order]
    st, en = np.searchsorted(sp, qp, 'left'), np.searchsorted(sp, qp, 'right')
    n = 0
    for i in range(len(d)):
        c = order[st[i]:en[i]]
        if not len(c): continue
        while True:
            s = np.sort(d[i])
            v = d[i, c]
            tied = c[np.searchsorted(s, v, 'right') - np.searchsorted(s, v, 'left') > 1]
            if not len(tied): break
            d[i, tied] = np.nextafter(d[i, tied], np.float32(np.inf)); n += len(tied)
    return n


# ------------------------------------------------------------------ our side
def status_kb(key):
    "VmHWM: peak resident memory of this process (not ru_maxrss: after fork+exec that keeps the parent's RSS); VmRSS: now"
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))
def hwm_kb(): return status_kb('VmHWM')


def child_features(data, repeats):
    "Run in a fresh process: the library's one evaluation (`evaluate_features`) from the saved features, times and peak RSS"
    import torch, pandas as pd
    from fastreid_vehicle.evaluation import evaluate_features
    warm_up()
    qf, gf = np.load(f'{data}/qf.npy'), np.load(f'{data}/gf.npy')
    qp, gp, qc, gc = (np.load(f'{data}/{n}.npy') for n in ('qp', 'gp', 'qc', 'gc'))
    items = pd.DataFrame(dict(pid=np.r_[qp, gp], camid=np.r_[qc, gc], split=['query'] * len(qp) + ['gallery'] * len(gp)))
    feats = torch.from_numpy(np.concatenate([qf, gf]))
    base = status_kb('VmRSS')
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = evaluate_features(items, feats, protocol='plain', distance='cosine')
        times.append(time.perf_counter() - t0)
    print(json.dumps({'times': times, 'base_kb': base, 'maxrss_kb': hwm_kb(),
                      'result': r.result.as_dict(), 'threads': torch.get_num_threads()}))


def warm_up():
    "One tiny evaluation, so that the counting kernel's one-time compilation (or load from its disk cache) is not timed"
    from fastreid_vehicle.metrics import evaluate_reid
    evaluate_reid(np.random.default_rng(0).random((4, 64), dtype=np.float32), np.arange(4), np.arange(64) % 4,
                  np.zeros(4), np.ones(64), progress=False)


def stats(ts): return min(ts), float(np.median(ts)), max(ts)
def fmt_t(ts): a, b, c = stats(ts); return f'{a:.3g} / {b:.3g} / {c:.3g}'
def gb(kb): return f'{kb / 2**20:.2f} GB'
def load(): return open('/proc/loadavg').read().split()[:3]


def distances(regime, qf, gf, qp, gp, seed=1):
    "The query x gallery float32 matrix of `regime`: 'strong' (cosine of the features) or 'weak' (random, matches -0.3)"
    from fastreid_vehicle.metrics import pairwise_distance
    if regime == 'strong': return pairwise_distance(qf, gf, 'cosine').numpy()
    if regime != 'weak': raise ValueError(f"regime must be 'strong' or 'weak', got {regime!r}")
    d = np.random.default_rng(seed).random((len(qp), len(gp)), dtype=np.float32)
    for s in range(0, len(qp), 256):                       # in blocks: bounded temporary memory
        same = qp[s:s + 256, None] == gp[None]
        d[s:s + 256][same] -= np.float32(0.3)
    return d


def run_peer_regime(name, regime, d, qp, gp, qc, gc, repeats, peer_py, skip_py, data, log):
    "Time ours and the peer, alternating, on one loaded matrix; returns the table row"
    from fastreid_vehicle.metrics import evaluate_reid
    Q, G = SIZES[name]
    row = dict(size=f'{Q:,} x {G:,}', name=name, regime=regime)
    row['nudged'] = untie(d, qp, gp)
    np.save(data / 'dist.npy', d)
    peer = Peer(peer_py, data)
    ours_t, peer_t, peer_rss = [], [], []
    for _ in range(repeats):
        t1 = time.perf_counter(); res = evaluate_reid(d, qp, gp, qc, gc, max_rank=50, progress=False)
        ours_t.append(time.perf_counter() - t1)
        out = peer.run('cy'); peer_t.append(out['time']); peer_rss.append(out['maxrss_kb'])
        log(f'[{name} {regime}] ours {ours_t[-1]:.3f} s, peer Cython {peer_t[-1]:.3f} s')
    pc, pa, pi = (np.load(data / f'peer_cy_{k}.npy') for k in ('cmc', 'ap', 'inp'))
    diffs = [np.abs(res.cmc - pc).max(), np.abs(res.all_AP - pa).max(), np.abs(res.all_INP - pi).max(),
             abs(res.mAP - float(np.mean(pa))), abs(res.mINP - float(np.mean(pi)))]   # fast-reid's mAP, mINP
    row.update(peer=peer_t, ours=ours_t, ratio=float(np.median(peer_t) / np.median(ours_t)),
               diff=float(max(diffs)), diffs=[float(x) for x in diffs], peer_rss=max(peer_rss),
               peer_base=peer.base_kb, result=res.as_dict(), n_peer_valid=len(pa))
    assert len(pa) == res.num_valid, (len(pa), res.num_valid)
    if name == '2k' and regime == 'strong' and not skip_py:
        out = peer.run('py')
        pc2, pa2, pi2 = (np.load(data / f'peer_py_{k}.npy') for k in ('cmc', 'ap', 'inp'))
        row['peer_py'] = out['time']
        row['diff_py'] = float(max(np.abs(res.cmc - pc2).max(), np.abs(res.all_AP - pa2).max(),
                                   np.abs(res.all_INP - pi2).max()))
        log(f'[{name}] peer pure Python {out["time"]:.1f} s, max diff {row["diff_py"]:.2e}')
    peer.close()
    return row


def run_size(name, regimes, repeats, peer_py, skip_py, tmp, log):
    "Rows of one size: one per regime against the peer (where it fits), then ours from the features"
    Q, G = SIZES[name]
    data = Path(tmp) / name; data.mkdir()
    t0 = time.perf_counter()
    qf, gf, qp, gp, qc, gc = make_features(Q, G)
    for n, a in dict(qf=qf, gf=gf, qp=qp, gp=gp, qc=qc, gc=gc).items(): np.save(data / f'{n}.npy', a)
    rows = []
    if name in PEER_SIZES:
        for regime in regimes:
            d = distances(regime, qf, gf, qp, gp)
            log(f'[{name} {regime}] matrix ready in {time.perf_counter() - t0:.1f} s')
            rows.append(run_peer_regime(name, regime, d, qp, gp, qc, gc, repeats, peer_py, skip_py, data, log))
            del d
    else:
        log(f'[{name}] features ready in {time.perf_counter() - t0:.1f} s')
        rows.append(dict(size=f'{Q:,} x {G:,}', name=name, regime='strong'))
    del qf, gf
    out = subprocess.run([sys.executable, __file__, '--child-features', str(data), '--repeats',
                          str(1 if name == 'large' else repeats)], capture_output=True, text=True,
                         env={**os.environ, 'PYTHONPATH': str(HERE.parent)})
    if out.returncode: raise RuntimeError(out.stderr)
    feat = json.loads(out.stdout.strip().splitlines()[-1])
    r = next((r for r in rows if r['regime'] == 'strong'), rows[0])   # the features give the strong matrix
    r.update(feat_times=feat['times'], feat_rss=feat['maxrss_kb'], feat_base=feat['base_kb'])
    r.setdefault('result', feat['result'])
    log(f'[{name}] ours from features: {fmt_t(feat["times"])} s, peak RSS {gb(feat["maxrss_kb"])} '
        f'(RSS before evaluating, features loaded: {gb(feat["base_kb"])}); {feat["result"]}')
    shutil.rmtree(data)
    return rows


def machine():
    import torch
    cpu = cpu_model()
    mem = next(int(l.split()[1]) for l in open('/proc/meminfo') if l.startswith('MemTotal'))
    return (f'{cpu}, {os.cpu_count()} cores, {mem / 2**20:.0f} GB RAM, Python {platform.python_version()}, '
            f'torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}')


def table(rows, load0, load1, cmd):
    L = [f'Command: `{cmd}`  ', f'Machine: {machine()}  ',
         f'Load average (1/5/15 min) before: {" ".join(load0)}, after: {" ".join(load1)} '
         '(the 2 cores are shared with other jobs)', '',
         '| size (query x gallery) | distances | fast-reid Cython, s (min / median / max) | ours from distmat, s '
         '| speed-up (median) | max abs diff | fast-reid peak RSS | ours from 512-d features, s '
         '| ours peak RSS (RSS before evaluating) |',
         '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        if 'peer' in r:
            peer, ours, ratio = fmt_t(r['peer']), fmt_t(r['ours']), f'{r["ratio"]:.1f}x'
            diff, prss = f'{r["diff"]:.1e}', gb(r['peer_rss'])
        else:
            Q, G = SIZES[r['name']]
            peer, ours, ratio, diff = f'cannot run (matrix + argsort {Q * G * 12 / 2**30:.1f} GB)', '-', '-', '-'
            prss = f'~{r.get("peer_est", 0):.1f} GB (estimated)'
        feat = (f'{fmt_t(r["feat_times"])} | {gb(r["feat_rss"])} ({gb(r["feat_base"])})' if 'feat_times' in r
                else '(same features as the strong row) | -')
        L.append(f'| {r["size"]} | {r["regime"]} | {peer} | {ours} | {ratio} | {diff} | {prss} | {feat} |')
    L.append('')
    for r in rows:
        m = r['result']
        L.append(f'- {r["size"]}, {r["regime"]}: rank-1 {m["rank1"]:.4f}, mAP {m["mAP"]:.4f}, mINP {m["mINP"]:.4f}, '
                 f'{m["num_valid"]:,} valid / {m["num_skipped"]:,} skipped queries'
                 + (f'; {r["nudged"]} tied distances nudged by one ulp' if 'nudged' in r else '')
                 + (f'; max abs diff cmc / AP / INP / mAP / mINP: {", ".join(f"{x:.1e}" for x in r["diffs"])}'
                    if 'diffs' in r else '')
                 + (f'; fast-reid pure-Python path: {r["peer_py"]:.1f} s, max abs diff {r["diff_py"]:.1e}'
                    if 'peer_py' in r else ''))
    return '\n'.join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--sizes', default='2k,small,large', help='comma-separated: ' + ','.join(SIZES))
    ap.add_argument('--regimes', default='strong,weak', help="distance matrices compared with the peer: strong, weak")
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--skip-py', action='store_true', help="skip fast-reid's pure-Python path (about 20 s at 2k)")
    ap.add_argument('--out', help='also write the markdown table to this file')
    ap.add_argument('--child-features', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child_features: return child_features(a.child_features, a.repeats)
    import torch
    torch.set_num_threads(min(2, os.cpu_count()))
    sys.path.insert(0, str(HERE.parent))
    log = lambda s: print(s, flush=True)
    load0 = load()
    log(f'machine: {machine()}; load average {" ".join(load0)}')
    peer_py = setup_peer()
    warm_up()
    rows = []
    with tempfile.TemporaryDirectory(dir=PEER) as tmp:
        for name in a.sizes.split(','):
            rows += run_size(name, a.regimes.split(','), a.repeats, peer_py, a.skip_py, tmp, log)
    # the peer's memory at the large size, extrapolated per matrix element from its largest measured run
    measured = [r for r in rows if 'peer_rss' in r]
    for r in rows:
        if 'peer' not in r and measured:
            m = max(measured, key=lambda x: (SIZES[x['name']][0] * SIZES[x['name']][1], x['peer_rss']))
            Qm, Gm = SIZES[m['name']]; Q, G = SIZES[r['name']]
            r['peer_est'] = ((m['peer_rss'] - m['peer_base']) / (Qm * Gm) * Q * G + Q * G * 4 / 1024) / 2**20
    cmd = 'python benchmarks/eval_speed.py ' + ' '.join(sys.argv[1:])
    md = table(rows, load0, load(), cmd.strip())
    print('\n' + md)
    if a.out: Path(a.out).write_text(md + '\n')


if __name__ == '__main__': main()
