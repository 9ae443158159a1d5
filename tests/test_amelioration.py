"""ANet's second stage (`AmeliorationStage`) with any optimiser: the backbone and the f head (the fixed reference of the
amelioration constraints) stay bit-identical, weights and BN buffers, while the heads after f train; the stage runs
after `export` and after `load_learner` and ends with its `fit` (stage 1's state back, the stage recorded); `amsgrad` is AMSGrad and keeps fastai's no-weight-decay rule for BN/bias."""
import math
from functools import partial
import pytest, torch
from torch import nn
from fastai.basics import Adam, SGD, Callback, load_learner, set_seed
from fastai.callback.training import ShortEpochCallback
from fastai.torch_core import norm_bias_params
from fastreid_vehicle.learner import reid_learner, amsgrad
from fastreid_vehicle.callbacks import AmeliorationStage, amelioration_frozen, end_amelioration

OPTS = {'adam': Adam, 'sgd_momentum': partial(SGD, mom=0.9), 'amsgrad': amsgrad}

def _snap(module): return {k: v.detach().clone() for k, v in module.state_dict().items()}

def _fit(learn, *args, **kwargs):
    with learn.no_bar(), learn.no_logging(): learn.fit(*args, **kwargs)

def _frozen_snaps(model): return {'backbone': _snap(model.backbone), 'f_head': _snap(model.f_head)}

def _assert_frozen_unchanged(model, before):
    for name, snap in before.items():
        now = _snap(getattr(model, name))
        assert now.keys() == snap.keys()
        moved = [k for k in snap if not torch.equal(snap[k], now[k])]
        assert not moved, f'{name} moved in the second stage: {moved[:5]}'
        assert any('running_mean' in k for k in snap), f'the check on {name} must cover BN buffers'
        # no gradient reached them; after the `fit` the stage has ended: trainable again (`AmeliorationStage.finish`)
        assert all(p.grad is None and p.requires_grad for p in getattr(model, name).parameters())

AFTER_F = ('j_head', 'theta_g1', 'theta_g2', 'theta_A', 'attr_att', 'attr_heads')

def _assert_heads_after_f_trained(model, before):
    for name in AFTER_F:
        now = _snap(getattr(model, name))
        assert any(not torch.equal(before[name][k], now[k]) for k in now), f'{name} did not train in the second stage'

@pytest.mark.parametrize('opt', list(OPTS))
def test_stage2_keeps_backbone_and_f_head_bit_identical(tiny_dls, opt):
    set_seed(0)
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False, opt_func=OPTS[opt], wd=0.05, metrics=[])
    _fit(learn, 1, 1e-3)                        # stage 1: everything trains, gradients and optimiser state build up
    frozen0 = _frozen_snaps(learn.model)
    heads0 = {n: _snap(getattr(learn.model, n)) for n in AFTER_F}
    _fit(learn, 1, 1e-3, cbs=AmeliorationStage(start_epoch=0))
    _assert_frozen_unchanged(learn.model, frozen0)
    _assert_heads_after_f_trained(learn.model, heads0)
    assert [id(m) for m in amelioration_frozen(learn.model)] == [id(learn.model.backbone), id(learn.model.f_head)]
    end_amelioration(learn)
    assert all(p.requires_grad for m in amelioration_frozen(learn.model) for p in m.parameters())

def test_stage2_after_export_and_after_load_learner(tiny_dls, tmp_path):
    set_seed(0)
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False, path=tmp_path, metrics=[])
    _fit(learn, 1, 1e-3)
    learn.export('stage1.pkl')                  # leaves the optimiser state a plain dict
    frozen0 = _frozen_snaps(learn.model)
    heads0 = {n: _snap(getattr(learn.model, n)) for n in AFTER_F}
    _fit(learn, 1, 1e-3, cbs=AmeliorationStage(start_epoch=0))
    _assert_frozen_unchanged(learn.model, frozen0)
    _assert_heads_after_f_trained(learn.model, heads0)

    learn2 = load_learner(tmp_path/'stage1.pkl')
    learn2.dls = tiny_dls
    frozen0 = _frozen_snaps(learn2.model)
    heads0 = {n: _snap(getattr(learn2.model, n)) for n in AFTER_F}
    _fit(learn2, 1, 1e-3, cbs=AmeliorationStage(start_epoch=0))
    _assert_frozen_unchanged(learn2.model, frozen0)
    _assert_heads_after_f_trained(learn2.model, heads0)

class ZeroGrads(Callback):
    "Zero every gradient before the step: what then moves a parameter is weight decay alone."
    def before_step(self):
        for p in self.learn.model.parameters():
            if p.grad is not None: p.grad.zero_()

@pytest.mark.parametrize('decouple_wd', [False, True])
def test_amsgrad_puts_no_weight_decay_on_bn_and_bias(tiny_dls, decouple_wd):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, opt_func=partial(amsgrad, decouple_wd=decouple_wd),
                         wd=0.1, metrics=[])
    p0 = {n: p.detach().clone() for n, p in learn.model.named_parameters()}
    _fit(learn, 1, 1e-2, cbs=[ZeroGrads(), ShortEpochCallback()])
    no_wd = {id(p) for p in norm_bias_params(learn.model)}   # fastai's rule (Learner's wd_bn_bias=False)
    named = dict(learn.model.named_parameters())
    bn_bias = [n for n, p in named.items() if id(p) in no_wd]
    assert any('bn' in n for n in bn_bias) and any(n.endswith('bias') for n in bn_bias)
    decayed = [n for n in bn_bias if not torch.equal(named[n], p0[n])]
    assert not decayed, f'weight decay moved BN / bias parameters: {decayed[:5]}'
    others = [n for n in named if id(named[n]) not in no_wd]
    assert others and all(not torch.equal(named[n], p0[n]) for n in others), 'the other weights must be decayed'

@pytest.mark.parametrize('decouple_wd', [False, True])
def test_amsgrad_matches_torch_amsgrad(decouple_wd):
    torch.manual_seed(0)
    w = torch.randn(6, 4)
    p, q = nn.Parameter(w.clone()), nn.Parameter(w.clone())
    ours = amsgrad([p], lr=1e-2, mom=0.9, sqr_mom=0.99, eps=1e-8, wd=0.05, decouple_wd=decouple_wd)
    ref = (torch.optim.AdamW if decouple_wd else torch.optim.Adam)([q], lr=1e-2, betas=(0.9, 0.99), eps=1e-8,
                                                                   weight_decay=0.05, amsgrad=True)
    plain = torch.optim.Adam([r := nn.Parameter(w.clone())], lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)
    for i in range(30):
        g = torch.randn(6, 4) * (4. if i < 5 else 0.3)   # large then small gradients: the running max matters
        p.grad, q.grad, r.grad = g.clone(), g.clone(), g.clone()
        ours.step(); ref.step(); plain.step()
    assert torch.allclose(p, q, atol=1e-6, rtol=1e-5), (p - q).abs().max()
    if not decouple_wd: assert not torch.allclose(p, r, atol=1e-4), 'AMSGrad must differ from plain Adam here'


# --- the stage ends with its fit: stage 1's state back, the stage recorded, only the active loss terms as columns

def _cols(learn): return [n for n in learn.recorder.metric_names if n in learn.loss_func.component_names]

def _row(learn, epoch=-1): return dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[epoch]))

def test_stage2_ends_with_its_fit_and_is_recorded(tiny_dls):
    set_seed(0)
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False, metrics=[])
    _fit(learn, 1, 1e-3)
    assert 'ac_tri' not in _cols(learn) and 'ac_id' not in _cols(learn) and 'tri_f' in _cols(learn)
    assert getattr(learn, 'amelioration_epochs', 0) == 0
    _fit(learn, 1, 1e-3, cbs=AmeliorationStage())
    assert {'ac_tri', 'ac_id'} <= set(_cols(learn)) and not {'tri_f', 'id_f'} & set(_cols(learn))
    assert learn.amelioration_epochs == 1 and learn.loss_func.ameliorate is False
    assert all(p.requires_grad for m in amelioration_frozen(learn.model) for p in m.parameters())
    assert all(m.training == learn.model.training for m in learn.model.modules())   # no layer left in the stage's modes
    assert not any(isinstance(c, AmeliorationStage) for c in learn.cbs)
    bb0 = _snap(learn.model.backbone)
    _fit(learn, 1, 1e-3)                        # a plain fit after the stage is stage 1: the backbone trains again
    assert any(not torch.equal(bb0[k], v) for k, v in learn.model.backbone.state_dict().items())
    assert 'ac_tri' not in _cols(learn)

def test_one_fit_spanning_both_stages_logs_each_term_while_active(tiny_dls):
    set_seed(0)
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False, metrics=[])
    _fit(learn, 2, 1e-3, cbs=AmeliorationStage(start_epoch=1))
    assert {'tri_f', 'id_f', 'ac_tri', 'ac_id', 'tri_j'} <= set(_cols(learn))
    e1, e2 = _row(learn, 0), _row(learn, 1)
    assert math.isnan(e1['ac_tri']) and math.isnan(e1['ac_id']) and not math.isnan(e1['tri_f'])
    assert math.isnan(e2['tri_f']) and math.isnan(e2['id_f']) and not math.isnan(e2['ac_tri'])
    assert not math.isnan(e1['tri_j']) and not math.isnan(e2['tri_j']) and learn.amelioration_epochs == 1

def test_exported_stage2_learner_loads_in_stage1_state_and_needs_data(tiny_dls, tmp_path):
    set_seed(0)
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False, path=tmp_path, metrics=[])
    learn.add_cb(AmeliorationStage())           # kept on the learner: every fit is a second stage, export included
    _fit(learn, 1, 1e-3)
    learn.export('stage2.pkl')
    learn2 = load_learner(tmp_path/'stage2.pkl')
    assert learn2.amelioration_epochs == 1 and learn2.loss_func.ameliorate is False
    assert all(p.requires_grad for p in learn2.model.parameters())
    with pytest.raises(ValueError, match='no training batches'): learn2.fit(1)
    assert learn2.loss_func.ameliorate is False and all(p.requires_grad for p in learn2.model.parameters())
    learn2.dls = tiny_dls
    frozen0 = _frozen_snaps(learn2.model)
    _fit(learn2, 1, 1e-3)                       # its AmeliorationStage came along: a second second-stage epoch
    _assert_frozen_unchanged(learn2.model, frozen0)
    assert learn2.amelioration_epochs == 2
    end_amelioration(learn2)                    # drop the callback: the next fit is stage 1
    assert not any(isinstance(c, AmeliorationStage) for c in learn2.cbs)


def test_stage2_on_a_ddp_wrapped_model_needs_a_new_wrapper(tiny_dls, tmp_path):
    "One gloo process: the stage finds the modules inside DDP; DDP built before the freeze fails, the re-made one trains"
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from fastreid_vehicle.callbacks import backbone_of, _rewrap_ddp
    set_seed(0)
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False, metrics=[])
    xb, *yb = tiny_dls.one_batch()
    def steps(model, n=2):
        for _ in range(n):
            learn.loss_func(model(xb), *yb).backward()
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        plain = learn.model
        learn.model = DDP(plain)
        assert backbone_of(learn.model) is plain.backbone and amelioration_frozen(learn.model)[1] is plain.f_head
        stage = AmeliorationStage(); stage.learn = learn
        old = learn.model
        stage.start()                                # freezes inside the wrapper, then wraps the module again
        assert isinstance(learn.model, DDP) and learn.model is not old and learn.model.module is plain
        steps(learn.model)
        assert all(p.grad is None for m in amelioration_frozen(plain) for p in m.parameters())
        plain.zero_grad(set_to_none=True)
        with pytest.raises(RuntimeError, match='finished reduction'): steps(old)   # the wrapper from before the freeze
    finally: dist.destroy_process_group()


@pytest.mark.slow   # about 40 s on a quiet 2-core machine: one `train` of ANet, 1 + 1 epochs
def test_train_with_a_second_stage_saves_a_stage1_state_learner_with_the_stage_recorded(tiny_veri_df, tmp_path):
    from pathlib import Path
    from fastreid_vehicle.pipeline import train
    from fastreid_vehicle.runs import load_run_learner
    root = Path(tiny_veri_df.path[0]).parent.parent
    train(preset='tiny', method='anet', backbone='resnet18', root=root, out=tmp_path/'run', size=64, P=4, K=4, epochs=1, stage2_epochs=1,
                progress=False, threads=1, seed=0, pretrained=False)
    import pandas as pd
    hist = pd.read_csv(tmp_path/'run'/'history.csv')
    assert hist['ac_tri'].isna().tolist() == [True, False] and hist['tri_f'].isna().tolist() == [False, True]
    with pytest.warns(UserWarning):
        pick = load_run_learner(tmp_path/'run', trust_pickle=True)
    safe = load_run_learner(tmp_path/'run')
    for learn in (pick, safe):
        assert learn.amelioration_epochs == 1 and learn.loss_func.ameliorate is False
        assert all(p.requires_grad for p in learn.model.parameters())
    with pytest.raises(ValueError, match='no training batches'): pick.fit(1)
    with pytest.raises(ValueError, match='placeholder loaders'): safe.fit(1)


def test_validate_and_get_preds_leave_the_stage_alone(tiny_dls):
    "fastai's validate / get_preds send before_fit too: a learner carrying the stage predicts without freezing or counting"
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False, metrics=[])
    learn.add_cb(AmeliorationStage())
    with learn.no_bar(): learn.validate(); learn.get_preds(dl=tiny_dls.valid)
    assert getattr(learn, 'amelioration_epochs', 0) == 0 and learn.loss_func.ameliorate is False
    assert all(p.requires_grad for p in learn.model.parameters())
    learn.dls = tiny_dls.new_empty()            # predicting needs no training data; fitting does
    with learn.no_bar(): learn.get_preds(dl=tiny_dls.valid)
    with pytest.raises(ValueError, match='no training batches'): learn.fit(1)
