"""Run by `test_distributed.py` under `torchrun --nproc_per_node 2` (CPU, gloo): ANet's two stages in one `fit` under
`learn.distrib_ctx()` (stage 2 from the second epoch, so the stage starts on the DDP-wrapped model). Each rank saves
its final weights and the backbone / f head as they were when stage 2 began; rank 0 saves the Recorder's last row."""
import sys
from pathlib import Path
import torch
from fastai.basics import Callback, set_seed, rank_distrib, get_model
from fastreid_vehicle.all import *

out, root = Path(sys.argv[1]), sys.argv[2]
FROZEN = ('backbone.', 'f_head.')

class SnapshotAtStage2(Callback):
    "The backbone and f head's state when the second stage begins (after `AmeliorationStage` has started it)"
    order = AmeliorationStage.order + 1
    def before_epoch(self):
        if self.epoch == 1: self.snap = {k: v.detach().clone() for k, v in get_model(self.model).state_dict().items() if k.startswith(FROZEN)}

init_distributed()
with local_main_first(): df = load_veri776(root)
set_seed(0)
dls = ReidDataLoaders.from_df(df, size=64, P=4, K=4, seed=0, preload=True)
learn = reid_learner(dls, 'anet', backbone='resnet18', pretrained=False, amp=False)
snap = SnapshotAtStage2()
with learn.no_bar(), learn.distrib_ctx(cpu=True, sync_bn=False):
    learn.fit(2, 1e-3, cbs=[AmeliorationStage(start_epoch=1), snap])
r = rank_distrib()
save_weights(learn.model, out/f'rank{r}.safetensors')
torch.save(snap.snap, out/f'stage2_start_rank{r}.pt')
if r == 0:
    atomic_write_json(dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]),
                           amelioration_epochs=learn.amelioration_epochs, ameliorate=learn.loss_func.ameliorate), out/'script.json')
