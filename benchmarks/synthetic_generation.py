"""Generation time of the synthetic VeRi presets (`fastreid_vehicle.synthetic.synthesize_veri`).

Usage:
    python benchmarks/synthetic_generation.py                      # tiny and small timed, veri_like estimated
    python benchmarks/synthetic_generation.py --workers 1 2        # also compare worker counts
    python benchmarks/synthetic_generation.py --full veri_like     # time veri_like completely (~10+ min on 2 cores)

A preset is "estimated" when it is not named in --full: `--sample` of its images, spread evenly over the dataset's
plan, are drawn and saved (one process), and the per-image time is scaled to the whole plan. Wall time depends on
what else runs on the machine; the CPU column (this process and its workers) is the steadier figure.
Prints a Markdown table.
"""
import argparse, os, resource, shutil, tempfile, time
from pathlib import Path

from fastreid_vehicle.synthetic import SYNTH_PRESETS, _jobs, _render_chunk, plan_veri, synthesize_veri


def _cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _row(preset, cfg, plan, workers, wall, cpu, how):
    counts = {s: sum(p['split'] == s for p in plan) for s in ('train', 'query', 'gallery')}
    n = sum(counts.values())
    return (f"| {preset} | {cfg.n_train_ids}/{cfg.n_test_ids} | {cfg.n_cams} | {cfg.size} | "
            f"{counts['train']}/{counts['query']}/{counts['gallery']} | {workers} | {wall:.1f} | {cpu:.1f} | "
            f"{n / wall:.0f} | {how} |")


def time_full(preset, workers, base):
    cfg = SYNTH_PRESETS[preset]; plan = plan_veri(cfg, 0)
    dest = base / f"{preset}_w{workers}"
    c0, t0 = _cpu(), time.perf_counter()
    synthesize_veri(dest, preset, seed=0, n_workers=workers, force=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    shutil.rmtree(dest, ignore_errors=True)
    return _row(preset, cfg, plan, workers, wall, cpu, "measured")


def time_sample(preset, n_sample, base):
    cfg = SYNTH_PRESETS[preset]; plan = plan_veri(cfg, 0); jobs = _jobs(plan)
    step = max(1, len(jobs) // n_sample); sample = jobs[::step][:n_sample]
    root = base / f"{preset}_sample"
    for d in ('image_train', 'image_query', 'image_test'): (root / d).mkdir(parents=True, exist_ok=True)
    c0, t0 = _cpu(), time.perf_counter()
    _render_chunk((str(root), cfg, 0, sample))
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    shutil.rmtree(root, ignore_errors=True)
    f = len(jobs) / len(sample)
    return _row(preset, cfg, plan, 1, wall * f, cpu * f, f"estimated from {len(sample)} of {len(jobs)} images")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--presets', nargs='+', default=['tiny', 'small', 'veri_like'])
    ap.add_argument('--full', nargs='*', default=['tiny', 'small'], help='presets timed completely')
    ap.add_argument('--workers', nargs='+', type=int, default=[1])
    ap.add_argument('--sample', type=int, default=1500, help='images drawn to estimate the other presets')
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix='synth_bench_'))
    print(f"CPU cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}\n")
    print("| preset | ids train/test | cams | size | images train/query/gallery | workers | wall s | CPU s | images/s (wall) | how |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for p in a.presets:
            if p in a.full:
                for w in a.workers: print(time_full(p, w, base), flush=True)
            else: print(time_sample(p, a.sample, base), flush=True)
    finally: shutil.rmtree(base, ignore_errors=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == '__main__': main()
