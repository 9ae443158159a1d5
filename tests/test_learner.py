"Learner-level tests: the ANet second-stage freeze proof, export round trip, loss-component and metric columns, AMP, schedules."
import pytest, torch, numpy as np
from fastai.basics import Callback, load_learner, set_seed
from fastai.callback.progress import CSVLogger
from fastai.callback.tracker import SaveModelCallback
from fastreid_vehicle.learner import reid_learner, amsgrad
from fastreid_vehicle.callbacks import AmeliorationStage, end_amelioration
from fastreid_vehicle.models import reid_loss
from fastreid_vehicle.inference import embed

def _quiet(learn): return learn.no_bar(), learn.no_logging()

def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}

def test_amelioration_stage_freezes_backbone_bit_identically(tiny_dls):
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False, lr=1e-3, wd=0.05)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)            # stage 1 moves everything
    bb0, heads0 = _snapshot(learn.model.backbone), _snapshot(learn.model)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3, cbs=AmeliorationStage(start_epoch=0))
    bb1 = _snapshot(learn.model.backbone)
    assert bb0.keys() == bb1.keys()
    for k in bb0: assert torch.equal(bb0[k], bb1[k]), f'backbone tensor {k} moved in the second stage'
    assert any('running_mean' in k for k in bb0), 'the proof must cover BN buffers'
    moved = [k for k, v in learn.model.state_dict().items() if not k.startswith('backbone.') and v.dtype.is_floating_point
             and not torch.equal(v, heads0[k])]
    assert any(k.startswith('joint') or 'j_' in k or k.startswith('j') for k in moved) or len(moved) > 10, moved
    # the stage cleans up at the end of its fit: loss L, backbone trainable, the stage recorded
    assert not learn.loss_func.ameliorate and learn.amelioration_epochs == 2
    assert all(p.requires_grad for p in learn.model.backbone.parameters())

def test_amelioration_stage_from_a_later_epoch(tiny_dls):
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False)
    snaps = []
    class Snap(Callback):
        order = AmeliorationStage.order + 1
        def before_epoch(self): snaps.append(_snapshot(self.learn.model.backbone))
    with learn.no_bar(), learn.no_logging(): learn.fit(3, 1e-3, cbs=[AmeliorationStage(start_epoch=1), Snap()])
    final = _snapshot(learn.model.backbone)
    assert any(not torch.equal(snaps[0][k], snaps[1][k]) for k in final), 'stage 1 (epoch 0) must train the backbone'
    assert all(torch.equal(snaps[1][k], final[k]) for k in final), 'from epoch 1 the backbone must not move'
    end_amelioration(learn)
    assert all(p.requires_grad for p in learn.model.backbone.parameters()) and not learn.loss_func.ameliorate

def test_amelioration_stage_needs_anet_loss(tiny_dls):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False)
    with pytest.raises(TypeError, match='ameliorate'):
        with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=AmeliorationStage())

@pytest.mark.parametrize('method', ['bot', 'mfgnet', 'anet'])
def test_fit_records_metric_and_loss_component_columns(tiny_dls, tmp_path, method):
    learn = reid_learner(tiny_dls, method, backbone='resnet18', pretrained=False, path=tmp_path)
    with learn.no_bar():
        learn.fit_one_cycle(1, 1e-3, cbs=[CSVLogger(fname='hist.csv'), SaveModelCallback(monitor='mAP', fname='best')])
    names = list(learn.recorder.metric_names)
    from fastreid_vehicle.callbacks import active_loss_terms
    comps = active_loss_terms(learn.loss_func)   # the terms that count: ANet's `ac_*` only in its second stage
    assert set(['rank1', 'mAP', 'mINP'] + comps) <= set(names), names
    assert not set(learn.loss_func.component_names) - set(comps) & set(names), names
    assert names[-1] == 'time'
    row = learn.recorder.values[-1]
    assert len(row) == len(names) - 2
    vals = dict(zip(names[1:-1], row))
    assert 0 <= vals['mAP'] <= 1 and 0 <= vals['rank1'] <= 1
    assert all(np.isfinite(vals[c]) for c in comps)
    assert set(learn.loss_func.component_names) == set(learn.loss_func.components), 'component_names must list what the loss reports'
    header = (tmp_path/'hist.csv').read_text().splitlines()[0].split(',')
    assert header == names
    assert (tmp_path/'models'/'best.pth').exists()

def test_unknown_setting_is_named(tiny_dls):
    with pytest.raises(TypeError, match='n_stripez'): reid_learner(tiny_dls, 'mfgnet', backbone='resnet18', pretrained=False, n_stripez=3)
    with pytest.raises(ValueError, match='method'): reid_learner(tiny_dls, 'nope', backbone='resnet18', pretrained=False)

def test_settings_reach_model_and_loss(tiny_dls):
    learn = reid_learner(tiny_dls, 'mfgnet', backbone='resnet18', pretrained=False, n_stripes=3, beta=0.5, cam='danet')
    assert len(learn.model.eval()(torch.randn(2, 3, 64, 64))[0]) == learn.model.embed_dim
    assert learn.loss_func.weight('tri') == 0.5
    learn = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False)
    assert learn.loss_func.attr_names == list(tiny_dls.attr_classes)

def test_export_round_trip_gives_identical_embeddings(tiny_dls, tmp_path):
    learn = reid_learner(tiny_dls, 'mfgnet', backbone='resnet18', pretrained=False, path=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    learn.export('learner.pkl')
    learn2 = load_learner(tmp_path/'learner.pkl')
    x = tiny_dls.valid.one_batch()[0]
    learn.model.eval(); learn2.model.eval()
    with torch.no_grad(): assert torch.equal(learn.model(x), learn2.model(x))
    dl = learn2.dls.test_dl(tiny_dls.valid.items)
    with learn2.no_bar(): e2 = embed(learn2, dl)
    with learn.no_bar(): e1 = embed(learn, tiny_dls.valid)
    assert torch.allclose(e1, e2, atol=1e-5)

def test_training_clearly_beats_random_retrieval(tiny_veri_df):
    from fastreid_vehicle.data import ReidDataLoaders
    from fastreid_vehicle.evaluation import evaluate_learner
    set_seed(0)
    dls = ReidDataLoaders.from_df(tiny_veri_df, size=(64, 64), P=4, K=4, bs_valid=32, seed=0)
    learn = reid_learner(dls, 'bot', backbone='resnet18', pretrained=False, metrics=[])
    with learn.no_bar(): before = evaluate_learner(learn)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(8, 2e-3)
    with learn.no_bar(): after = evaluate_learner(learn)
    assert after.mAP > before.mAP + 0.1, (before, after)

def test_cpu_bf16_autocast_is_active(tiny_dls):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, amp=True)
    seen = []
    class Probe(Callback):
        order = 50
        def after_pred(self): seen.append(torch.is_autocast_enabled('cpu'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=Probe())
    assert seen and all(seen)
    assert isinstance(learn.recorder.values[-1][0], float)
    with pytest.raises(ValueError, match='CUDA'):
        l2 = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, amp='fp16')
        with l2.no_bar(), l2.no_logging(): l2.fit(1)

def test_fit_step_decay_schedule(tiny_dls):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, opt_func=amsgrad)
    with learn.no_bar(), learn.no_logging(): learn.fit_step_decay(4, 1e-3, milestones=(2, 3), warmup_epochs=1)
    lrs = np.array(learn.recorder.lrs)
    n = len(tiny_dls.train)
    assert lrs[0] < 1e-3 * 0.2 and np.isclose(lrs[n], 1e-3)
    assert np.isclose(lrs[2 * n], 1e-4) and np.isclose(lrs[3 * n], 1e-5)
    with pytest.raises(ValueError, match='milestones'): learn.fit_step_decay(4, 1e-3, milestones=(5,))

def test_lr_find_and_fine_tune(tiny_dls):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False)
    with learn.no_bar(), learn.no_logging():
        res = learn.lr_find(num_it=6, show_plot=False)
        learn.fine_tune(1, 1e-3, freeze_epochs=1)
    assert res.valley > 0


def test_reid_learner_defaults_are_the_configs():
    "reid_learner's run defaults are read from the typed configs, not written again"
    import inspect
    from fastreid_vehicle.config import ModelConfig, FitConfig
    sig = inspect.signature(reid_learner).parameters
    for cfg, names in ((ModelConfig, ('method', 'backbone', 'pretrained', 'weights')),
                       (FitConfig, ('lr', 'wd', 'amp', 'channels_last'))):
        for n in names: assert sig[n].default == getattr(cfg, n), n

def test_sched_step_decay_values():
    from fastreid_vehicle.learner import sched_step_decay
    f = sched_step_decay(1., [0.5, 0.75], warmup=0.1)   # the learner page's example: warm-up, then x0.1 at 50% and 75%
    for pct, lr in ((0., 0.1), (0.1, 1.), (0.3, 1.), (0.6, 0.1), (0.8, 0.01)):
        assert float(f(pct)) == pytest.approx(lr, rel=1e-6), pct

def test_reid_learner_is_a_fastai_learner_with_two_param_groups(tiny_dls):
    from fastai.learner import Learner
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False)
    assert isinstance(learn, Learner)   # backbone and heads are its two parameter groups
    assert len(learn.opt_func(learn.splitter(learn.model), lr=1e-3).param_lists) == 2
