"""Benchmark of `fastreid_vehicle.search.GalleryIndex` at deployment scale (default 1,000,000 x 512).

Data: a Gaussian mixture that looks like re-id embeddings: `n / per_id` vehicle ids, each a centre drawn around one
of `n / per_id / 100` "model" centres, and every gallery vector = its id centre + noise (cosine similarity about 0.9
within an id, 0.65 within a model, 0 otherwise). Queries are fresh samples of random ids. Vectors are generated in
chunks into a raw float32 file in a temporary folder (`--workdir`), so that the main process never holds the gallery;
every index kind is built in its own subprocess (clean memory numbers) reading the file in chunks.

Measured per index kind / search setting: build time (training + adding), on-disk size of the saved index, process RSS
after the build (and the increase caused by the build), query latency one query at a time (median and 95th percentile
over `--n-single` queries) and for a batch of `--nq` queries (per-query time), and recall@k of the approximate
indices against the exact top-k.

    python benchmarks/search_index.py                    # full size: 1,000,000 x 512, 1,000 queries
    python benchmarks/search_index.py --n 100000         # smaller
    python benchmarks/search_index.py --kinds exact,ivfpq --threads 1
"""
import argparse, json, os, platform, resource, shutil, subprocess, sys, tempfile, time
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIGS = {  # kind -> (constructor kwargs, list of search settings)
    'exact': (dict(kind='exact'), [dict()]),
    'ivf': (dict(kind='ivf', nlist=1024, train_size=50_000, store_embeddings=False), [dict(nprobe=8), dict(nprobe=32)]),
    'ivfpq': (dict(kind='ivfpq', nlist=1024, train_size=50_000, m=64, nbits=8),
              [dict(nprobe=32, refine=1), dict(nprobe=32, refine=4), dict(nprobe=32, refine=10)]),
    'hnsw': (dict(kind='hnsw', hnsw_m=16, ef_construction=40, store_embeddings=False),
             [dict(ef_search=64), dict(ef_search=128), dict(ef_search=256), dict(ef_search=512)]),
}


def rss() -> int:
    "Resident set size of this process in bytes"
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def generate(path, n, dim, nq, per_id, seed, chunk=100_000):
    "Gallery (raw float32 file) and queries of a Gaussian mixture of ids grouped into models"
    rng = np.random.default_rng(seed)
    n_ids = max(1, n // per_id); n_models = max(1, n_ids // 100)
    s = 1 / dim ** 0.5  # a Python float: keeps float32 arrays float32
    models = rng.standard_normal((n_models, dim), dtype=np.float32) * s
    centres = models[rng.integers(0, n_models, n_ids)] + 0.6 * s * rng.standard_normal((n_ids, dim), dtype=np.float32)
    with open(path, 'wb') as f:
        for a in range(0, n, chunk):
            m = min(chunk, n - a)
            ids = rng.integers(0, n_ids, m)
            (centres[ids] + 0.4 * s * rng.standard_normal((m, dim), dtype=np.float32)).astype(np.float32).tofile(f)
    q = centres[rng.integers(0, n_ids, nq)] + 0.4 * s * rng.standard_normal((nq, dim), dtype=np.float32)
    return q.astype(np.float32)


def worker(a):
    "Build one index kind, run its search settings, print one JSON line per setting"
    import faiss, torch
    faiss.omp_set_num_threads(a.threads); torch.set_num_threads(a.threads)
    from fastreid_vehicle.search import GalleryIndex
    ctor, settings = CONFIGS[a.worker]
    q = np.load(os.path.join(a.workdir, 'queries.npy'))
    r0 = rss()
    t0 = time.perf_counter()
    gi = GalleryIndex(a.dim, distance='cosine', seed=a.seed, **ctor)
    if gi.params['store_embeddings']: gi.reserve(a.n)
    chunk = 100_000
    with open(os.path.join(a.workdir, 'gallery.f32'), 'rb') as f:
        if not gi.is_trained:   # train on a random sample of the whole gallery, like a user who trains first
            idx = np.sort(np.random.default_rng(a.seed).choice(a.n, min(a.n, gi.params['train_size']), replace=False))
            mm = np.memmap(os.path.join(a.workdir, 'gallery.f32'), np.float32, 'r', shape=(a.n, a.dim))
            sample = np.array(mm[idx]); del mm
            t_tr = time.perf_counter(); gi.train_index(sample); t_train = time.perf_counter() - t_tr; del sample
        else: t_train = 0.0
        for s in range(0, a.n, chunk):
            x = np.fromfile(f, np.float32, count=min(chunk, a.n - s) * a.dim).reshape(-1, a.dim)
            gi.add(x, {'pid': np.arange(s, s + len(x)) // 10})
    build = time.perf_counter() - t0
    r1 = rss()
    folder = os.path.join(a.workdir, f'index-{a.worker}')
    t_s = time.perf_counter(); gi.save(folder); t_save = time.perf_counter() - t_s
    disk = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    shutil.rmtree(folder)
    for st in settings:
        gi.search(q[:5], a.k, **st)  # warm-up
        lat = []
        for i in range(a.n_single):
            t = time.perf_counter(); gi.search(q[i], a.k, **st); lat.append(time.perf_counter() - t)
        t = time.perf_counter(); res = gi.search(q, a.k, **st); batch = time.perf_counter() - t
        tag = a.worker + ''.join(f' {k}={v}' for k, v in st.items())
        np.save(os.path.join(a.workdir, f'I-{tag.replace(" ", "_")}.npy'), res.indices)
        print(json.dumps(dict(tag=tag, kind=a.worker, build_s=build, train_s=t_train, save_s=t_save, disk_bytes=disk,
                              rss_bytes=r1, rss_build_bytes=r1 - r0, peak_rss_bytes=peak_rss(),
                              single_ms_p50=1e3 * float(np.median(lat)), single_ms_p95=1e3 * float(np.percentile(lat, 95)),
                              batch_s=batch, batch_ms_per_query=1e3 * batch / len(q))), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=1_000_000, help='gallery size')
    p.add_argument('--dim', type=int, default=512)
    p.add_argument('--nq', type=int, default=1000, help='queries in the batch')
    p.add_argument('--n-single', type=int, default=20, help='queries timed one at a time')
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--per-id', type=int, default=10, help='mean gallery images per id')
    p.add_argument('--kinds', default='exact,ivf,ivfpq,hnsw')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--workdir', default=None, help='folder for the generated data (default: a temporary folder, removed)')
    p.add_argument('--out', default=None, help='also write the markdown table to this file')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker: return worker(a)
    kinds = [k.strip() for k in a.kinds.split(',') if k.strip()]
    bad = [k for k in kinds if k not in CONFIGS]
    if bad: p.error(f"unknown kinds {bad}; choose from {list(CONFIGS)}")
    if 'exact' not in kinds: kinds = ['exact'] + kinds   # the ground truth for recall
    own = a.workdir is None
    a.workdir = a.workdir or tempfile.mkdtemp(prefix='search_bench_')
    os.makedirs(a.workdir, exist_ok=True)
    t0 = time.perf_counter()
    q = generate(os.path.join(a.workdir, 'gallery.f32'), a.n, a.dim, a.nq, a.per_id, a.seed)
    np.save(os.path.join(a.workdir, 'queries.npy'), q)
    t_gen = time.perf_counter() - t0
    print(f"generated {a.n:,} x {a.dim} gallery + {a.nq:,} queries in {t_gen:.1f} s ({a.workdir})", flush=True)
    rows = []
    try:
        for kind in kinds:
            cmd = [sys.executable, os.path.abspath(__file__), '--worker', kind] + [
                f'--{k.replace("_", "-")}={v}' for k, v in vars(a).items() if k not in ('worker', 'out', 'kinds') and v is not None]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode: sys.exit(f"worker {kind} failed:\n{out.stderr[-3000:]}")
            for line in out.stdout.splitlines():
                if line.startswith('{'):
                    r = json.loads(line); rows.append(r); print(f"  {r['tag']}: built in {r['build_s']:.1f} s", flush=True)
        gt = np.load(os.path.join(a.workdir, 'I-exact.npy'))
        for r in rows:
            I = np.load(os.path.join(a.workdir, f'I-{r["tag"].replace(" ", "_")}.npy'))
            r['recall'] = float(np.mean([len(set(x) & set(y)) / a.k for x, y in zip(I, gt)]))
    finally:
        if own: shutil.rmtree(a.workdir, ignore_errors=True)
    gb = 2 ** 30
    head = (f"| index (search setting) | build s | disk GB | RSS after build GB (build +GB) | 1-query latency p50 / p95 ms | "
            f"batch of {a.nq:,}: s (ms/query) | recall@{a.k} |\n|---|---|---|---|---|---|---|")
    lines = [head] + [f"| {r['tag']} | {r['build_s']:.1f}" + (f" (train {r['train_s']:.1f})" if r['train_s'] else '') +
                      f" | {r['disk_bytes'] / gb:.2f} | {r['rss_bytes'] / gb:.2f} (+{r['rss_build_bytes'] / gb:.2f}) | "
                      f"{r['single_ms_p50']:.2f} / {r['single_ms_p95']:.2f} | {r['batch_s']:.2f} ({r['batch_ms_per_query']:.2f}) | "
                      f"{r['recall']:.4f} |" for r in rows]
    load = os.getloadavg()
    info = (f"{a.n:,} x {a.dim} float32 gallery (cosine), {a.nq:,} queries, k={a.k}, {a.threads} thread(s); "
            f"{platform.machine()} {os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / gb:.0f} GB RAM, "
            f"load average at the end {load[0]:.1f}; faiss {__import__('faiss').__version__}; data generation {t_gen:.0f} s")
    table = '\n'.join(lines) + '\n\n' + info + '\n'
    print('\n' + table)
    if a.out:
        with open(a.out, 'w') as f: f.write(table)


if __name__ == '__main__': main()
