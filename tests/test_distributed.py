"""Two CPU processes with the gloo backend under `torchrun`: the command line's `train` and a script with
`learn.distrib_ctx()` train on whole identities, and the Recorder's re-id metrics, computed on the validation set
gathered from both ranks, equal one process's on the same weights."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from fastreid_vehicle.data import ReidDataLoaders
from fastreid_vehicle.inference import load_weights
from fastreid_vehicle.learner import reid_learner
from fastreid_vehicle.readers import load_veri776
from fastreid_vehicle.runs import read_run

HERE = Path(__file__).resolve().parent
TORCHRUN = shutil.which('torchrun', path=str(Path(sys.executable).parent)) or shutil.which('torchrun')
ACCELERATE = shutil.which('accelerate', path=str(Path(sys.executable).parent)) or shutil.which('accelerate')
METRICS = ('rank1', 'mAP', 'mINP')

def _launch(launcher:list, tiny_veri_df, out:Path, *worker_args):
    "Run `ddp_worker.py` in 2 CPU processes under `launcher`; the data root"
    root = Path(tiny_veri_df.path[0]).parent.parent
    env = {**os.environ, 'PYTHONPATH': f"{HERE.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    for k in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'): env.pop(k, None)
    r = subprocess.run([*launcher, str(HERE/'ddp_worker.py'), str(out), str(root), *worker_args],
                       env=env, capture_output=True, text=True, timeout=900, cwd=out)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-6000:]
    return root

def _check_cli_run(cli:Path):
    "The command line's run: 2 processes, Recorder metric (gathered over 2 ranks) == rank 0's one-process evaluation"
    hist = pd.read_csv(cli/'history.csv')
    assert len(hist) == 1 and read_run(cli)['processes'] == 2
    one = json.loads((cli/'metrics.json').read_text())   # the standard protocol's numbers: the headline now
    for k in METRICS: assert hist[k].iloc[-1] == pytest.approx(one[k], abs=1e-9), k

@pytest.mark.slow   # about a minute on a quiet 2-core machine: two processes, two trainings
@pytest.mark.skipif(TORCHRUN is None, reason='torchrun not found')
def test_two_processes_gloo_metric_equals_one_process(tiny_veri_df, tmp_path):
    root = _launch([TORCHRUN, '--standalone', '--nproc_per_node', '2'], tiny_veri_df, tmp_path)
    _check_cli_run(tmp_path/'cli')
    # the script: Recorder metric == `learn.validate()` in this one process on the saved weights
    rec = json.loads((tmp_path/'script.json').read_text())
    dls = ReidDataLoaders.from_df(load_veri776(root), size=64, P=4, K=4, seed=0, preload=True)
    learn = reid_learner(dls, 'bot', backbone='resnet18', pretrained=False)
    load_weights(learn.model, tmp_path/'script.safetensors')
    with learn.no_bar(): vals = learn.validate()
    got = dict(zip(learn.recorder.metric_names[2:], vals))   # valid_loss, rank1, mAP, mINP, ...
    assert rec['batches_per_rank'] == len(dls.train) // 2
    for k in METRICS: assert rec[k] == pytest.approx(got[k], abs=1e-9), (k, rec[k], got[k])


@pytest.mark.slow   # about 40 s: two processes, one training
@pytest.mark.skipif(ACCELERATE is None, reason='accelerate not found')
def test_accelerate_launch_two_cpu_processes(tiny_veri_df, tmp_path):
    "`accelerate launch --multi_gpu --num_processes 2` without GPUs: accelerate's torchrun, 2 gloo processes"
    _launch([ACCELERATE, 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
             '--dynamo_backend', 'no'], tiny_veri_df, tmp_path, 'cli')
    _check_cli_run(tmp_path/'cli')


def test_importing_the_package_leaves_fastais_distributed_dl_unchanged():
    "Nothing in the package replaces an attribute of fastai's `DistributedDL` (it subclasses it: `ReidDistributedDL`)"
    code = ("from fastai.distributed import DistributedDL\n"
            "before = dict(vars(DistributedDL))\n"
            "import fastreid_vehicle.all\n"
            "after = dict(vars(DistributedDL))\n"
            "changed = sorted(k for k in set(before) | set(after) if before.get(k) is not after.get(k))\n"
            "assert not changed, changed\n"
            "from fastreid_vehicle.distributed import ReidDistributedDL\n"
            "assert issubclass(ReidDistributedDL, DistributedDL) and '_broadcast' in vars(ReidDistributedDL)\n")
    r = subprocess.run([sys.executable, '-c', code], cwd=HERE.parent, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def test_reid_learner_rewraps_fastais_distributed_loaders(tiny_dls):
    "`ReidDistributedLoaders` (in every reid_learner) turns the `DistributedDL`s of `DistributedTrainer` into ours"
    from fastai.distributed import DistributedDL, DistributedTrainer
    from fastreid_vehicle.distributed import ReidDistributedDL, ReidDistributedLoaders
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False)
    cb = learn.reid_distributed_loaders
    assert isinstance(cb, ReidDistributedLoaders) and cb.order == DistributedTrainer.order + 1
    train, valid = learn.dls.train, learn.dls.valid
    n = len(train)
    try:
        learn.dls.loaders = [DistributedDL(train, rank=1, world_size=2), valid]
        cb.before_fit()
        assert type(learn.dls.train) is ReidDistributedDL and learn.dls.valid is valid
        assert (learn.dls.train.rank, learn.dls.train.world_size, len(learn.dls.train)) == (1, 2, -(-n // 2))
        learn.dl = DistributedDL(valid, rank=0, world_size=2)
        cb.before_validate()
        assert type(learn.dl) is ReidDistributedDL and learn.dl.dl is valid
    finally: learn.dls.loaders = [train, valid]   # the loaders are the session's `tiny_dls`


@pytest.mark.slow   # about a minute and a half on a quiet 2-core machine: two processes, two epochs of ANet
@pytest.mark.skipif(TORCHRUN is None, reason='torchrun not found')
def test_two_processes_anet_second_stage(tiny_veri_df, tmp_path):
    "Stage 2 starting inside a DDP fit: backbone and f head untouched by it and equal on both ranks, metric == one process's"
    import torch
    from safetensors.torch import load_file
    root = Path(tiny_veri_df.path[0]).parent.parent
    env = {**os.environ, 'PYTHONPATH': f"{HERE.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    for k in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'): env.pop(k, None)
    r = subprocess.run([TORCHRUN, '--standalone', '--nproc_per_node', '2', str(HERE/'ddp_stage2_worker.py'), str(tmp_path), str(root)],
                       env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-6000:]
    w0, w1 = load_file(str(tmp_path/'rank0.safetensors')), load_file(str(tmp_path/'rank1.safetensors'))
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0), 'the ranks disagree'
    for rank, w in ((0, w0), (1, w1)):
        snap = torch.load(tmp_path/f'stage2_start_rank{rank}.pt')
        assert any('running_mean' in k for k in snap) and any(k.startswith('f_head.') for k in snap)
        moved = [k for k in snap if not torch.equal(snap[k], w[k])]
        assert not moved, f'rank {rank}: stage 2 moved {moved[:5]}'
    rec = json.loads((tmp_path/'script.json').read_text())
    assert rec['amelioration_epochs'] == 1 and rec['ameliorate'] is False
    dls = ReidDataLoaders.from_df(load_veri776(root), size=64, P=4, K=4, seed=0, preload=True)
    learn = reid_learner(dls, 'anet', backbone='resnet18', pretrained=False, amp=False)
    load_weights(learn.model, tmp_path/'rank0.safetensors')
    with learn.no_bar(): vals = learn.validate()
    got = dict(zip(learn.recorder.metric_names[2:], vals))
    for k in METRICS: assert rec[k] == pytest.approx(got[k], abs=1e-9), (k, rec[k], got[k])
