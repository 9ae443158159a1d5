"""`ReidLearner` feels like fastai: predict, show_results, get_preds(with_loss=True), fastai's Interpretation, trackers
on mAP, arch callables and a fast pretrained-weights error."""
import time
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from fastai.basics import load_learner, DataLoaders
from fastreid_vehicle.callbacks import cpu_has_native_fp16
from fastai.vision.core import PILImage
from fastai.interpret import Interpretation
from fastai.callback.tracker import SaveModelCallback, EarlyStoppingCallback, ReduceLROnPlateau
from fastcore.xtras import modified_env
from fastreid_vehicle.learner import reid_learner, ReidLearner, item_table
from fastreid_vehicle.interpret import ReidInterpretation
from fastreid_vehicle.losses import BoTLoss, ANetLoss, TripletLoss

@pytest.fixture(autouse=True)
def one_thread():
    "One torch thread: the tiny models here run much faster than with threads fighting over busy cores"
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def _learner(dls, method='bot', **kw): return reid_learner(dls, method, backbone='resnet18', pretrained=False, **kw)

def _row(dls): return dls.valid.items.iloc[0]

def test_reid_learner_is_a_reid_learner(tiny_dls):
    assert isinstance(_learner(tiny_dls), ReidLearner)

def test_predict_takes_path_pilimage_row_array_bot(tiny_dls):
    learn, row = _learner(tiny_dls), _row(tiny_dls)
    with learn.no_bar():
        dec, emb, probs = learn.predict(row['path'])
        same = [learn.predict(it)[1] for it in (PILImage.create(row['path']), row,
                                                np.asarray(Image.open(row['path']).convert('RGB')))]
        ref = learn.get_preds()[0][0]
    assert dec == {} and probs == {}
    assert emb.shape == (learn.model.embed_dim,)
    for e in same: torch.testing.assert_close(e, emb, atol=1e-4, rtol=0)
    torch.testing.assert_close(emb, ref.float(), atol=1e-4, rtol=0)
    img, *rest = learn.predict(row, with_input=True)
    assert img.shape[0] == 3 and len(rest) == 3

def test_predict_anet_decodes_attributes_and_survives_export(tiny_dls, tiny_veri_df, tmp_path):
    learn, row = _learner(tiny_dls, 'anet', path=tmp_path), _row(tiny_dls)
    learn.export('anet.pkl')
    with learn.no_bar():
        dec, emb, probs = learn.predict(row)
        learn2 = load_learner(tmp_path/'anet.pkl')
        dec2, emb2, probs2 = learn2.predict(row)
    assert isinstance(learn2, ReidLearner)
    assert set(dec) == set(tiny_dls.attr_vocabs) == set(probs)
    for n, p in probs.items():
        assert p.shape == (len(tiny_dls.attr_vocabs[n]),) and abs(float(p.sum()) - 1) < 1e-5
        assert isinstance(dec[n], str) and dec[n]
    for n, p in probs.items():   # the name the dataset's table gives the predicted code
        code = tiny_dls.attr_vocabs[n][int(p.argmax())]
        assert dec[n] == tiny_veri_df.attrs[f'{n}_names'][code]
    assert dec == dec2
    torch.testing.assert_close(emb, emb2, atol=1e-5, rtol=0)

def test_predict_bad_input_is_named(tiny_dls, tmp_path):
    learn = _learner(tiny_dls)
    with pytest.raises(ValueError, match='uint8'): learn.predict(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="'path'"): learn.predict(pd.Series({'pid': 1}))
    with pytest.raises(FileNotFoundError, match='no image file'): learn.predict(tmp_path/'nope.jpg')
    with pytest.raises(TypeError, match='item must be'): learn.predict(3)
    assert list(item_table(Image.new('RGB', (4, 4))).columns) == ['path']

def test_show_results_makes_a_ranked_retrieval_figure(tiny_dls):
    learn = _learner(tiny_dls)
    with learn.no_bar(): fig = learn.show_results(max_n=2, k=3, shuffle=False)
    assert len(fig.axes) == 2 * 4
    q0 = tiny_dls.valid.items[tiny_dls.valid.items['split'] == 'query'].iloc[0]
    assert fig.axes[0].get_title().startswith(f"query {q0['pid']}")
    import matplotlib.pyplot as plt; plt.close(fig)

@pytest.mark.parametrize('method', ['bot', 'anet'])
def test_get_preds_with_loss_gives_one_loss_per_image(tiny_dls, method):
    learn = _learner(tiny_dls, method)
    with learn.no_bar(): emb, targs, losses = learn.get_preds(with_loss=True)
    n = len(tiny_dls.valid.items)
    assert emb.shape[0] == n and losses.shape == (n,)
    assert torch.isfinite(losses).all() and (losses >= 0).all() and (losses > 0).any()
    assert learn.loss_func.reduction == 'mean'
    assert all(m.reduction == 'mean' for m in learn.loss_func.modules() if hasattr(m, 'reduction'))

def test_loss_reduction_reaches_every_term():
    torch.manual_seed(0)
    B, y = 8, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    pred = {'feat': torch.randn(B, 4), 'bn_feat': torch.randn(B, 4), 'logits': torch.randn(B, 5)}
    lf = BoTLoss()
    mean = lf(pred, y)
    lf.reduction = 'none'
    per = lf(pred, y)
    assert per.shape == (B,) and torch.allclose(per.mean(), mean, atol=1e-5)   # every anchor valid: means agree
    assert lf(pred['feat'], y).shape == (B,)
    lf.reduction = 'sum'
    assert torch.allclose(lf(pred, y), per.sum(), atol=1e-5)
    with pytest.raises(ValueError, match='reduction'): lf.reduction = 'avg'
    with pytest.raises(ValueError, match='reduction'): TripletLoss(reduction='avg')(pred['feat'], y)
    al = ANetLoss()
    al.reduction = 'none'
    out = {'j': torch.randn(B, 4), 'f': torch.randn(B, 4), 'g': torch.randn(B, 4), 'j_logits': torch.randn(B, 5),
           'f_logits': torch.randn(B, 5), 'attr_logits': {'color': torch.randn(B, 3), 'type': torch.randn(B, 2)}}
    yc, yt = torch.tensor([0, 0, 1, 1, 2, 2, -1, -1]), torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    assert al(out, y, yc, yt).shape == (B,)
    al.ameliorate = True
    assert al(out, y, yc, yt).shape == (B,)

def test_fastai_interpretation_from_learner_works(tiny_dls):
    learn = _learner(tiny_dls)
    with learn.no_bar():
        interp = Interpretation.from_learner(learn)
        losses, idx = interp.top_losses(3)
        inps, preds, targs, decoded, l = interp[idx]
    assert len(interp.losses) == len(tiny_dls.valid.items)
    assert losses.shape == (3,) and preds.shape[0] == 3 and torch.equal(l, losses)

def test_reid_interpretation_is_a_fastai_interpretation(tiny_dls):
    learn = _learner(tiny_dls)
    with learn.no_bar(): interp = ReidInterpretation.from_learner(learn)
    assert isinstance(interp, Interpretation) and interp.learn is learn
    nq = len(interp.q_items)
    assert interp.losses.shape == (len(tiny_dls.valid.items),) and (interp.losses[nq:] == 0).all()
    np.testing.assert_allclose(interp.losses[:nq].numpy()[interp.result.valid], 1 - interp.result.all_AP, atol=1e-6)
    assert isinstance(interp.top_losses(2), pd.DataFrame)   # the re-id table: worst queries

def test_trackers_left_at_valid_loss_follow_map(tiny_dls, tmp_path, capsys):
    learn = _learner(tiny_dls, path=tmp_path)
    save, stop, plateau = SaveModelCallback(), EarlyStoppingCallback(), ReduceLROnPlateau()
    rank1 = SaveModelCallback(monitor='rank1', fname='r1')
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[save, stop, plateau, rank1])
    for cb in (save, stop, plateau):
        assert cb.monitor == 'mAP' and cb.comp is np.greater and cb.min_delta >= 0
    assert rank1.monitor == 'rank1'
    assert save.best == learn.recorder.values[-1][list(learn.recorder.metric_names[1:]).index('mAP')]
    assert 'SaveModelCallback monitors mAP' in capsys.readouterr().out

def test_trackers_unchanged_when_asked_or_without_map(tiny_dls, tmp_path):
    learn = _learner(tiny_dls, path=tmp_path)
    learn.default_monitor = None
    save = SaveModelCallback()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=save)
    assert save.monitor == 'valid_loss'
    learn = _learner(tiny_dls, path=tmp_path, metrics=[])
    save = SaveModelCallback()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=save)
    assert save.monitor == 'valid_loss'

def test_arch_callable_is_a_backbone(tiny_dls, tmp_path):
    from fastai.vision.all import resnet18
    import torchvision
    assert resnet18 is torchvision.models.resnet18
    learn = reid_learner(tiny_dls, 'bot', backbone=resnet18, pretrained=False)
    assert learn.model.backbone.out_channels == 512 and learn.model.backbone.last_stride == 1
    from fastreid_vehicle.backbones import torchvision_weights_file
    sd = resnet18().state_dict()
    with modified_env(TORCH_HOME=str(tmp_path)):
        f = torchvision_weights_file('resnet18'); f.parent.mkdir(parents=True); torch.save(sd, f)
        learn = reid_learner(tiny_dls, 'bot', backbone=resnet18)   # pretrained=True: torchvision's cached file
    for k, v in learn.model.backbone.state_dict().items(): assert torch.equal(v, sd[k]), k
    with pytest.raises(TypeError, match='arch callable'): reid_learner(tiny_dls, 'bot', backbone=print)

def test_pretrained_without_weights_fails_fast(tiny_dls, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf
    from torchvision.models import resnet50
    monkeypatch.setattr(hf, 'HF_HUB_CACHE', str(tmp_path/'hf'))   # an empty cache, whatever this machine holds
    monkeypatch.setattr(hf, 'HF_HUB_OFFLINE', True)                 # no network, as on this machine
    for backbone in ('resnet34', resnet50):
        t0 = time.perf_counter()
        with modified_env(TORCH_HOME=str(tmp_path/'torch')):
            with pytest.raises(RuntimeError, match='weights='): reid_learner(tiny_dls, 'bot', backbone=backbone)
        assert time.perf_counter() - t0 < 15, backbone

def test_reid_learner_to_fp16_refuses_on_cpu_without_native_fp16(tiny_dls):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, amp=False)
    if torch.cuda.is_available() or cpu_has_native_fp16(): pytest.skip('this machine runs fp16')
    with pytest.raises(ValueError, match='to_fp16'): learn.to_fp16()

def test_reid_learner_refuses_plain_dataloaders(tiny_dls):
    plain = DataLoaders(tiny_dls.train, tiny_dls.valid)
    with pytest.raises(TypeError, match='ReidDataLoaders'): reid_learner(plain, 'bot', backbone='resnet18', pretrained=False)

def test_reid_learner_path_follows_dls_path_as_fastai(tiny_dls, tmp_path):
    dls = tiny_dls
    old = dls.path
    try:
        dls.path = tmp_path
        assert reid_learner(dls, 'bot', backbone='resnet18', pretrained=False).path == tmp_path
        assert reid_learner(dls, 'bot', backbone='resnet18', pretrained=False, path=tmp_path/'x').path == tmp_path/'x'
    finally: dls.path = old

def test_predict_after_second_stage_fit(tiny_dls, tmp_path):
    "After `fit(..., cbs=AmeliorationStage())` the loss columns change; `predict` (fastai's get_preds) still works"
    from fastreid_vehicle.callbacks import AmeliorationStage
    learn, row = _learner(tiny_dls, 'anet', path=tmp_path), _row(tiny_dls)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
        learn.fit(1, 1e-4, cbs=AmeliorationStage())
        dec, emb, probs = learn.predict(row)
    assert emb.ndim == 1 and set(dec) == set(tiny_dls.attr_vocabs)
