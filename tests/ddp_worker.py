"""Run by `test_distributed.py` under `torchrun --nproc_per_node 2` or `accelerate launch --multi_gpu --num_processes 2`
(CPU, gloo): the command line's `train`, then (unless a third argument says `cli`) a script with `learn.distrib_ctx()`
that checks every training batch of every rank holds whole identities."""
import sys
from collections import Counter
from pathlib import Path
from fastai.basics import Callback, set_seed, rank_distrib, num_distrib
from fastreid_vehicle.all import *
from fastreid_vehicle.cli import main

out, root = Path(sys.argv[1]), sys.argv[2]
main(['train', '--preset', 'tiny', '--root', root, '--out', str(out/'cli'), '--size', '64', '--P', '4', '--K', '4',
      '--epochs', '1', '--threads', '1', '--no-progress'])
if sys.argv[3:] == ['cli']: sys.exit(0)

class WholeIdentities(Callback):
    "Fail unless each training batch of this rank is P identities x K images"
    def before_batch(self):
        if not self.training: return
        counts = Counter(self.yb[0].tolist())
        assert len(counts) == 4 and set(counts.values()) == {4}, f"rank {rank_distrib()}: batch ids {counts}"
        self.n = getattr(self, 'n', 0) + 1

init_distributed()
with local_main_first(): df = load_veri776(root)
set_seed(0)
dls = ReidDataLoaders.from_df(df, size=64, P=4, K=4, seed=0, preload=True)
learn = reid_learner(dls, 'bot', backbone='resnet18', pretrained=False)
check = WholeIdentities()
with learn.no_bar(), learn.distrib_ctx(cpu=True, sync_bn=False): learn.fit(1, 1e-3, cbs=check)
assert check.n == len(dls.train) // num_distrib(), (check.n, len(dls.train))
if rank_distrib() == 0:
    save_weights(learn.model, out/'script.safetensors')
    atomic_write_json(dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]), batches_per_rank=check.n),
                      out/'script.json')
