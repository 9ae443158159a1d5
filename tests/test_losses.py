"Tests of fastreid_vehicle.losses: values against hand computations, masking, NaN-freedom, the wrappers."
import math, pickle
import pytest, torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from fastai.torch_core import TensorBase, TensorCategory

from fastreid_vehicle.losses import *
from fastreid_vehicle.models import reid_loss

torch.set_num_threads(1)

def sp(v): return math.log1p(math.exp(v))

X1 = torch.tensor([[0.], [1.], [3.], [7.]])   # 1-d points used throughout
Y1 = torch.tensor([0, 0, 1, 1])

# ---------------------------------------------------------------- cross-entropy
def test_label_smoothing_ce_hand_values():
    lg = torch.tensor([[math.log(3), 0.]])  # p = (3/4, 1/4)
    assert LabelSmoothingCE(0.)(lg, torch.tensor([0])).item() == pytest.approx(math.log(4 / 3), abs=1e-6)
    exp = 0.9 * math.log(4 / 3) + 0.1 * 0.5 * (math.log(4 / 3) + math.log(4))
    assert LabelSmoothingCE(0.1)(lg, torch.tensor([0])).item() == pytest.approx(exp, abs=1e-6)
    assert LabelSmoothingCE(0.2)(lg, torch.tensor([1])).item() == pytest.approx(
        0.8 * math.log(4) + 0.1 * (math.log(4 / 3) + math.log(4)), abs=1e-6)

def _smooth_ce_before(logits, target, eps=0.1, reduction='mean'):
    "The hand-written label-smoothed cross-entropy `LabelSmoothingCE` replaced (targets < 0 ignored)"
    valid = target >= 0
    logp = F.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(1, target.clamp(min=0)[:, None]).squeeze(1)
    loss = (1 - eps) * nll - eps * logp.mean(1)
    if reduction == 'none': return torch.where(valid, loss, torch.zeros_like(loss))
    if not bool(valid.any()): return logits.sum() * 0.
    return loss[valid].sum() if reduction == 'sum' else loss[valid].mean()

@pytest.mark.parametrize("eps", [0., 0.1, 0.3])
@pytest.mark.parametrize("reduction", ['mean', 'sum', 'none'])
def test_label_smoothing_ce_matches_the_hand_written_one(eps, reduction):
    "torch's cross_entropy(label_smoothing, ignore_index) gives the numbers of the former `smooth_ce`, every target < 0 ignored"
    g = torch.Generator().manual_seed(1)
    lg = torch.randn(7, 5, generator=g) * 3
    for t in (torch.tensor([0, -1, 3, -2, 4, 1, 2]), torch.tensor([-1] * 7), torch.tensor([2, 2, 0, 1, 4, 3, 0]),
              torch.tensor([-1, -1, 3, -5, 4, -100, 0])):
        got, exp = LabelSmoothingCE(eps, reduction)(lg, t), _smooth_ce_before(lg, t, eps, reduction)
        assert got.shape == exp.shape and torch.allclose(got, exp, atol=1e-6), (t, got, exp)

@pytest.mark.parametrize("eps", [0., 0.1, 0.3])
def test_label_smoothing_ce_matches_torch(eps):
    g = torch.Generator().manual_seed(0)
    lg, t = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    assert torch.allclose(LabelSmoothingCE(eps)(lg, t), F.cross_entropy(lg, t, label_smoothing=eps), atol=1e-6)

def test_attribute_ce_masks_missing_labels():
    lg = torch.tensor([[0., 0.], [math.log(3), 0.], [5., -5.]])
    t = torch.tensor([-1, 0, -1])
    exp = 0.9 * math.log(4 / 3) + 0.05 * (math.log(4 / 3) + math.log(4))
    assert AttributeCE()(lg, t).item() == pytest.approx(exp, abs=1e-6)
    per = LabelSmoothingCE(reduction='none')(lg, t)
    assert per[0] == 0 and per[2] == 0 and per[1].item() == pytest.approx(exp, abs=1e-6)

def test_attribute_ce_all_missing_is_zero_and_differentiable():
    lg = torch.randn(4, 3, requires_grad=True)
    loss = AttributeCE()(lg, torch.full((4,), -1))
    assert loss.item() == 0.
    loss.backward()
    assert torch.isfinite(lg.grad).all() and lg.grad.abs().sum() == 0

# ---------------------------------------------------------------- batch-hard triplet
def test_triplet_hand_values():
    # anchors: 0 -> (1, 3); 1 -> (1, 2); 3 -> (4, 2); 7 -> (4, 6)
    assert TripletLoss()(X1, Y1).item() == pytest.approx(2.3 / 4, abs=1e-5)
    assert TripletLoss(margin=1.5)(X1, Y1).item() == pytest.approx((0 + 0.5 + 3.5 + 0) / 4, abs=1e-5)
    assert TripletLoss(soft_margin=True)(X1, Y1).item() == pytest.approx(
        (sp(-2) + sp(-1) + sp(2) + sp(-2)) / 4, abs=1e-5)

def test_triplet_2d_euclidean_not_squared():
    x = torch.tensor([[0., 0.], [3., 4.], [0., 1.], [6., 8.]])
    y = torch.tensor([0, 0, 1, 1])
    # anchor0: pos 5, neg min(1, 10) = 1 -> 4.3; anchor1: pos 5, neg min(sqrt(18), 5) -> 5 - sqrt(18) + .3
    # anchor2: pos sqrt(36+49)=9.22, neg min(1, sqrt(18)) = 1; anchor3: pos 9.22, neg min(10, 5) = 5
    d = math.sqrt(85)
    exp = (4.3 + (5 - math.sqrt(18) + 0.3) + (d - 1 + 0.3) + (d - 5 + 0.3)) / 4
    assert TripletLoss()(x, y).item() == pytest.approx(exp, abs=1e-4)

def test_triplet_l2():
    x = torch.tensor([[1., 0.], [5., 0.], [0., 2.], [1., 1.]])
    y = torch.tensor([0, 0, 1, 1])
    # normalised: a=(1,0), a'=(1,0), b=(0,1), b'=(1,1)/sqrt2; |a-b'| = |b-b'| = sqrt(2 - sqrt2) = r, |a-b| = sqrt2
    # anchors a, a': 0 - r + .3 < 0; b: r - sqrt2 + .3 < 0; b': r - r + .3 = .3
    r = math.sqrt(2 - math.sqrt(2))
    exp = (0 + 0 + max(0, r - math.sqrt(2) + .3) + 0.3) / 4
    assert TripletLoss(l2=True)(x, y).item() == pytest.approx(exp, abs=1e-4)
    # points on a ray collapse to the same unit vector: every distance within an identity is 0
    ray = torch.tensor([[1., 0], [2., 0], [0., 1], [0., 3]])
    assert TripletLoss(l2=True)(ray, y).item() == pytest.approx(0., abs=1e-3)

def test_triplet_skips_anchors_and_zero_when_none():
    # the lone identity 2 has no positive: only anchors 0 and 1 count
    x, y = torch.tensor([[0.], [1.], [3.]]), torch.tensor([0, 0, 2])
    d_ap, d_an, *_ , keep = hard_mining(euclidean_distance(x), y)
    assert keep.tolist() == [True, True, False]
    assert TripletLoss(margin=2.5)(x, y).item() == pytest.approx(((1 - 3 + 2.5) + (1 - 2 + 2.5)) / 2, abs=1e-5)
    for labels in ([0, 1, 2], [4, 4, 4]):
        xs = torch.randn(3, 5, requires_grad=True)
        loss = TripletLoss()(xs, torch.tensor(labels))
        assert loss.item() == 0. and not torch.isnan(loss)
        loss.backward()
        assert torch.isfinite(xs.grad).all()

def test_triplet_valid_mask():
    x = torch.tensor([[0.], [1.], [3.], [7.], [0.5]])
    y = torch.tensor([0, 0, 1, 1, 1])
    valid = torch.tensor([True, True, True, True, False])
    assert TripletLoss()(x, y, valid).item() == pytest.approx(2.3 / 4, abs=1e-5)
    assert TripletLoss()(x, y).item() != pytest.approx(2.3 / 4, abs=1e-3)

def _brute_triplet(x, y, margin):
    n, tot, cnt = len(y), 0., 0
    for a in range(n):
        dp = [float((x[a] - x[p]).norm()) for p in range(n) if p != a and y[p] == y[a]]
        dn = [float((x[a] - x[q]).norm()) for q in range(n) if y[q] != y[a]]
        if dp and dn: tot += max(0., max(dp) - min(dn) + margin); cnt += 1
    return tot / cnt if cnt else 0.

@settings(max_examples=40, deadline=None)
@given(st.integers(2, 9), st.integers(1, 4), st.integers(0, 10_000), st.floats(0., 2.))
def test_triplet_matches_brute_force(n, n_cls, seed, margin):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 3, generator=g), torch.randint(0, n_cls, (n,), generator=g)
    assert TripletLoss(margin)(x, y).item() == pytest.approx(_brute_triplet(x, y, margin), abs=1e-4)

def test_triplet_accepts_fastai_tensor_types():
    loss = TripletLoss()(TensorBase(X1), TensorCategory(Y1))
    assert type(loss) is torch.Tensor and loss.item() == pytest.approx(2.3 / 4, abs=1e-5)

def test_distance_in_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 64, generator=g) * 10, torch.arange(8).repeat_interleave(2)
    ref = TripletLoss()(x, y)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        d = euclidean_distance(x)
        got = TripletLoss()(x, y)
    assert d.dtype == torch.float32 and got.item() == pytest.approx(ref.item(), rel=1e-5)

# ---------------------------------------------------------------- attribute-pattern triplet
def test_attribute_patterns():
    pat, valid = attribute_patterns(torch.tensor([1, 1, 2, 1, -1]), torch.tensor([0, 0, 0, 3, 0]))
    assert pat[0] == pat[1] and len({pat[0].item(), pat[2].item(), pat[3].item()}) == 3
    assert valid.tolist() == [True, True, True, True, False]

def test_attribute_triplet_hand_value_and_skipping():
    g = torch.tensor([[0.], [1.], [3.], [7.], [2.], [0.2]])
    col = torch.tensor([1, 1, 2, 2, -1, 5])
    typ = torch.tensor([0, 0, 0, 0, 3, -1])
    # images 4 and 5 lack an attribute: skipped as anchors and as candidates -> the 4-point example
    assert AttributeTripletLoss()(g, col, typ).item() == pytest.approx(2.3 / 4, abs=1e-5)

def test_attribute_triplet_negatives_differ_in_any_attribute():
    g = torch.tensor([[0.], [1.], [1.5], [9.]])
    col, typ = torch.tensor([1, 1, 1, 1]), torch.tensor([0, 0, 4, 4])   # same colour, two types
    # anchor0: pos 1, neg 1.5 -> 0; anchor1: pos 1, neg .5 -> .8; anchor(1.5): pos 7.5, neg .5 -> 7.3; anchor9: 7.5-8 -> 0
    assert AttributeTripletLoss()(g, col, typ).item() == pytest.approx((0 + .8 + 7.3 + 0) / 4, abs=1e-5)

def test_attribute_triplet_all_missing():
    g = torch.randn(6, 4, requires_grad=True)
    loss = AttributeTripletLoss()(g, torch.full((6,), -1), torch.tensor([0, 1, 0, 1, 0, 1]))
    assert loss.item() == 0.
    loss.backward()
    assert torch.isfinite(g.grad).all()

# ---------------------------------------------------------------- amelioration constraints
def test_ac_id_hand_value_and_gradients():
    lj, lf = torch.tensor([[math.log(3), 0.], [0., 0.]]), torch.tensor([[0., 0.], [0., math.log(3)]])
    t = torch.tensor([0, 0])
    # image 0: CE_j = log 4/3, CE_f = log 2; image 1: CE_j = log 2, CE_f = log 4
    exp = (sp(math.log(4 / 3) - math.log(2)) + sp(math.log(2) - math.log(4))) / 2
    assert ac_id(lj, lf, t, eps=0.).item() == pytest.approx(exp, abs=1e-6)
    lj_, lf_ = lj.clone().requires_grad_(), lf.clone().requires_grad_()
    AmeliorationIDLoss(eps=0.)(lj_, lf_, t).backward()
    assert lf_.grad is None and lj_.grad.abs().sum() > 0
    lf_ = lf.clone().requires_grad_()
    ac_id(lj, lf_, t, detach_f=False).backward()
    assert lf_.grad.abs().sum() > 0

JX = torch.tensor([[0.], [1.], [3.], [7.]])
FX = torch.tensor([[0.], [5.], [2.], [3.]])   # here f's hardest pairs differ from j's

def _ac_terms(dj, df, p, n):
    return sum(sp(dj[a][p[a]] - df[a][p[a]]) + sp(df[a][n[a]] - dj[a][n[a]]) for a in range(4)) / 4

def test_ac_triplet_miners_hand_values():
    dj = [[abs(a - b) for b in (0, 1, 3, 7)] for a in (0, 1, 3, 7)]
    df = [[abs(a - b) for b in (0, 5, 2, 3)] for a in (0, 5, 2, 3)]
    # j space: positives 1,0,3,2; negatives 2,2,1,1.  f space (0,5 | 2,3): positives 1,0,3,2; negatives 2,3,0,1
    exp_j = _ac_terms(dj, df, [1, 0, 3, 2], [2, 2, 1, 1])
    exp_f = _ac_terms(dj, df, [1, 0, 3, 2], [2, 3, 0, 1])
    assert exp_j != pytest.approx(exp_f)
    assert ac_triplet(JX, FX, Y1, mining='j').item() == pytest.approx(exp_j, abs=1e-5)
    assert ac_triplet(JX, FX, Y1, mining='f').item() == pytest.approx(exp_f, abs=1e-5)
    assert ac_triplet(JX, FX, Y1, mining='both').item() == pytest.approx((exp_j + exp_f) / 2, abs=1e-5)
    # separate: each space's own hardest distances
    jap, jan = [1, 1, 4, 4], [3, 2, 2, 6]
    fap, fan = [5, 5, 1, 1], [2, 2, 2, 2]
    exp_s = sum(sp(jap[a] - fap[a]) + sp(fan[a] - jan[a]) for a in range(4)) / 4
    assert ac_triplet(JX, FX, Y1, mining='separate').item() == pytest.approx(exp_s, abs=1e-5)
    with pytest.raises(ValueError, match="mining"): ac_triplet(JX, FX, Y1, mining='hardest')

def test_ac_triplet_detach_and_no_anchor():
    j, f = JX.clone().requires_grad_(), FX.clone().requires_grad_()
    AmeliorationTripletLoss()(j, f, Y1).backward()
    assert f.grad is None and j.grad.abs().sum() > 0
    f = FX.clone().requires_grad_()
    ac_triplet(JX, f, Y1, detach_f=False).backward()
    assert f.grad.abs().sum() > 0
    j = torch.randn(3, 2, requires_grad=True)
    loss = ac_triplet(j, torch.randn(3, 2), torch.tensor([0, 1, 2]))
    assert loss.item() == 0.
    loss.backward()

# ---------------------------------------------------------------- wrappers
def _bot_pred():
    return {'feat': X1, 'bn_feat': X1, 'logits': torch.tensor([[math.log(3), 0.]] * 4)}

def test_bot_loss_value_and_components():
    lf = BoTLoss(eps=0.)
    t = torch.tensor([0, 0, 1, 1])
    loss = lf(_bot_pred(), t, torch.full((4,), -1), torch.full((4,), -1))
    ce = (2 * math.log(4 / 3) + 2 * math.log(4)) / 4
    assert loss.item() == pytest.approx(ce + 2.3 / 4, abs=1e-5)
    assert set(lf.components) == {'id', 'tri'}
    assert lf.components['id'].item() == pytest.approx(ce, abs=1e-6) and not lf.components['id'].requires_grad
    lf2 = BoTLoss(eps=0., w_id=0.5, w_tri=2.)
    assert lf2(_bot_pred(), t).item() == pytest.approx(0.5 * ce + 2 * 2.3 / 4, abs=1e-5)

def test_eval_tensor_path():
    lf = BoTLoss()
    lf(_bot_pred(), Y1)
    comps = dict(lf.components)
    assert lf(X1, Y1).item() == pytest.approx(2.3 / 4, abs=1e-5)
    assert lf.components == comps   # validation does not overwrite the training components
    # raw pids as labels (validation), each pid once: no anchor -> 0, never NaN
    z = lf(torch.randn(5, 8), torch.tensor([101, 7, 33, 2, 9]))
    assert z.item() == 0. and not torch.isnan(z)
    assert reid_loss('anet')(torch.randn(4, 8), TensorCategory(torch.tensor([3, 3, 3, 3]))).item() == 0.

def test_mfgnet_loss_weights():
    lg = torch.tensor([[math.log(3), 0.]] * 4)
    t = torch.tensor([0, 0, 1, 1])
    ce = (2 * math.log(4 / 3) + 2 * math.log(4)) / 4
    pred = {'feat': X1, 'logits': lg, 'local_logits': [lg, lg, torch.zeros(4, 2)]}
    lf = MFGNetLoss()
    loss = lf(pred, t)
    assert set(lf.components) == {'id_global', 'id_local', 'tri'}
    assert lf.components['id_local'].item() == pytest.approx(2 * ce + math.log(2), abs=1e-5)
    assert loss.item() == pytest.approx(ce + 2 * ce + math.log(2) + 0.1 * 2.3 / 4, abs=1e-5)
    assert MFGNetLoss(alpha=2., beta=1., local_reduce='mean')(pred, t).item() == pytest.approx(
        2 * (ce + (2 * ce + math.log(2)) / 3) + 2.3 / 4, abs=1e-5)
    # no local branch: id_local is 0
    lf(dict(pred, local_logits=[]), t)
    assert lf.components['id_local'].item() == 0.

def _anet_pred(requires_grad=False):
    g = torch.Generator().manual_seed(0)
    p = {'j': torch.randn(8, 6, generator=g), 'f': torch.randn(8, 6, generator=g), 'g': torch.randn(8, 5, generator=g),
         'j_logits': torch.randn(8, 4, generator=g), 'f_logits': torch.randn(8, 4, generator=g),
         'attr_logits': {'color': torch.randn(8, 3, generator=g), 'type': torch.randn(8, 2, generator=g)}}
    if requires_grad:
        p = {k: ({n: t.requires_grad_() for n, t in v.items()} if isinstance(v, dict) else v.requires_grad_())
             for k, v in p.items()}
    return p

YID = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
YC, YT = torch.tensor([0, 0, 1, 1, 2, -1, 0, 0]), torch.tensor([1, 1, 0, 0, 1, 1, -1, 1])

def test_anet_loss_composition():
    p = _anet_pred()
    lf = ANetLoss()
    L = lf(p, YID, YC, YT)
    c = lf.components
    assert set(c) == {'tri_j', 'id_j', 'tri_g', 'tri_f', 'id_f', 'att_color', 'att_type', 'ac_tri', 'ac_id'}
    assert c['tri_j'].item() == pytest.approx(batch_hard_triplet(p['j'], YID).item(), abs=1e-6)
    assert c['id_f'].item() == pytest.approx(LabelSmoothingCE()(p['f_logits'], YID).item(), abs=1e-6)
    assert c['att_color'].item() == pytest.approx(LabelSmoothingCE()(p['attr_logits']['color'], YC).item(), abs=1e-6)
    assert c['tri_g'].item() == pytest.approx(AttributeTripletLoss()(p['g'], YC, YT).item(), abs=1e-6)
    assert c['ac_tri'].item() == pytest.approx(ac_triplet(p['j'], p['f'], YID).item(), abs=1e-6)
    L_JM = c['tri_j'] + c['id_j'] + c['tri_g']
    L_VAN = c['tri_f'] + c['id_f'] + c['att_color'] + c['att_type']
    assert L.item() == pytest.approx((L_JM + L_VAN).item(), abs=1e-5)
    lf2 = ANetLoss(lambda_=0.5, lambda_A=2., lambda_G=3.)
    L2 = lf2(p, YID, YC, YT)
    assert L2.item() == pytest.approx((c['tri_j'] + c['id_j'] + 3 * c['tri_g'] + 0.5 * (
        c['tri_f'] + c['id_f'] + 2 * (c['att_color'] + c['att_type']))).item(), abs=1e-5)

def test_anet_second_stage_loss():
    p = _anet_pred(requires_grad=True)
    lf = ANetLoss()
    L = lf(p, YID, YC, YT); c = dict(lf.components)
    lf.ameliorate = True
    L2 = lf(p, YID, YC, YT)
    assert L2.item() == pytest.approx((L + c['ac_tri'] + c['ac_id'] - (c['tri_f'] + c['id_f'])).item(), abs=1e-5)
    L2.backward()
    # f only enters through AC, which treats it as a fixed reference: no gradient reaches f
    assert p['f'].grad is None and p['f_logits'].grad is None and p['j'].grad.abs().sum() > 0

def test_anet_loss_attr_names_order_and_errors():
    p = _anet_pred()
    a = ANetLoss()(p, YID, YC, YT)
    b = ANetLoss(attr_names=('type', 'color'))(p, YID, YT, YC)
    assert a.item() == pytest.approx(b.item(), abs=1e-6)
    with pytest.raises(ValueError, match="attr_names"): ANetLoss(attr_names=('color', 'model'))(p, YID, YC, YT)
    with pytest.raises(ValueError, match="attribute targets"): ANetLoss()(p, YID, YC)

def test_anet_loss_batch_without_attributes_is_nan_free():
    p = _anet_pred(requires_grad=True)
    none = torch.full((8,), -1)
    lf = ANetLoss()
    L = lf(p, YID, none, none)
    assert torch.isfinite(L)
    assert lf.components['att_color'] == 0 and lf.components['att_type'] == 0 and lf.components['tri_g'] == 0
    L.backward()
    for k in ('j', 'f', 'g'): assert torch.isfinite(p[k].grad).all()
    assert torch.isfinite(p['attr_logits']['color'].grad).all()

def test_reid_loss_factory_and_pickling():
    assert isinstance(reid_loss('bot'), BoTLoss) and isinstance(reid_loss('mfgnet', beta=0.), MFGNetLoss)
    lf = reid_loss('anet', ac_mining='both')
    assert isinstance(lf, ANetLoss) and lf.ac_tri.mining == 'both'
    with pytest.raises(ValueError, match="method"): reid_loss('pcb')
    lf2 = pickle.loads(pickle.dumps(lf))   # learn.export pickles the loss
    assert lf2(_anet_pred(), YID, YC, YT).item() == pytest.approx(lf(_anet_pred(), YID, YC, YT).item(), abs=1e-6)


# ---------------------------------------------------------------- the checks of the losses page (nbs/07_losses.ipynb)
def test_losses_page_hand_values():
    "The hand computations the page shows, checked: cross-entropies, triplet mining, patterns, AC terms, wrappers."
    from fastcore.test import test_eq, test_close, test_fail
    # page cell: lg = torch.tensor([[0., 0.], [math.log(3), 0.]])
    lg = torch.tensor([[0., 0.], [math.log(3), 0.]])
    test_close(LabelSmoothingCE(0.1, reduction='none')(lg, torch.tensor([1, 0])),
               torch.tensor([math.log(2), 0.9*math.log(4/3) + 0.05*(math.log(4/3) + math.log(4))]))
    test_close(LabelSmoothingCE(0.)(lg, torch.tensor([1, 0])), (math.log(2) + math.log(4/3)) / 2)
    # missing labels (-1) are masked; an all-missing batch gives exactly 0 and a usable graph
    test_close(AttributeCE()(lg, torch.tensor([-1, 0])), 0.9*math.log(4/3) + 0.05*(math.log(4/3) + math.log(4)))
    z = AttributeCE()(lg.clone().requires_grad_(), torch.tensor([-1, -1]))
    test_eq(z.item(), 0.); z.backward()
    LabelSmoothingCE(0.1, reduction='none')(lg, torch.tensor([1, 0]))
    # page cell: x = torch.tensor([[0.], [1.], [3.], [7.]])
    x = torch.tensor([[0.], [1.], [3.], [7.]])
    y = torch.tensor([0, 0, 1, 1])
    d = euclidean_distance(x)
    test_close(d[0], torch.tensor([0., 1., 3., 7.]), eps=1e-4)
    d_ap, d_an, p_idx, n_idx, keep = hard_mining(d, y)
    test_close(d_ap, torch.tensor([1., 1., 4., 4.]), eps=1e-4); test_close(d_an, torch.tensor([3., 2., 2., 6.]), eps=1e-4)
    test_eq(p_idx.tolist(), [1, 0, 3, 2]); test_eq(n_idx.tolist(), [2, 2, 1, 1]); test_eq(keep.all(), True)
    test_close(TripletLoss()(x, y), 2.3 / 4, eps=1e-4)
    test_close(TripletLoss(soft_margin=True)(x, y), (sp(-2) + sp(-1) + sp(2) + sp(-2)) / 4, eps=1e-4)
    TripletLoss()(x, y), TripletLoss(soft_margin=True)(x, y)
    # page cell: pts, lab = torch.tensor([[0.], [1.], [3.], [7.], [20.]]), to
    pts, lab = torch.tensor([[0.], [1.], [3.], [7.], [20.]]), torch.tensor([0, 0, 1, 1, 2])
    per = TripletLoss(reduction='none')(pts, lab)
    test_close(per[:4].mean(), TripletLoss()(pts, lab)); test_eq(per[4], 0.)   # anchor 20: a lone identity
    per
    # page cell: pat, valid = attribute_patterns(torch.tensor([1, 1, 2, 2, -1
    pat, valid = attribute_patterns(torch.tensor([1, 1, 2, 2, -1]), torch.tensor([0, 0, 0, 0, 3]))
    test_eq(pat[0], pat[1]); test_eq(pat[2], pat[3]); test_eq(pat[0] == pat[2], False)
    test_eq(valid.tolist(), [True]*4 + [False])
    g = torch.tensor([[0.], [1.], [3.], [7.], [2.]])
    test_close(AttributeTripletLoss()(g, torch.tensor([1, 1, 2, 2, -1]), torch.tensor([0, 0, 0, 0, 3])), 2.3/4, eps=1e-4)
    # same colour but different type: a different pattern (a negative)
    pat, _ = attribute_patterns(torch.tensor([1, 1]), torch.tensor([0, 1])); test_eq(pat[0] == pat[1], False)
    # nothing known -> 0
    test_eq(AttributeTripletLoss()(g, torch.full((5,), -1), torch.full((5,), -1)).item(), 0.)
    attribute_patterns(torch.tensor([1, 1, 2, 2, -1]), torch.tensor([0, 0, 0, 0, 3]))
    # page cell: lj, lf = torch.tensor([[math.log(3), 0.]]), torch.tensor([[0
    lj, lf = torch.tensor([[math.log(3), 0.]]), torch.tensor([[0., 0.]])
    test_close(ac_id(lj, lf, torch.tensor([0]), eps=0.), math.log(1 + 2/3))
    # detach_f: no gradient reaches f's logits
    lj_, lf_ = lj.clone().requires_grad_(), lf.clone().requires_grad_()
    ac_id(lj_, lf_, torch.tensor([0])).backward(); test_eq(lf_.grad, None); assert lj_.grad.abs().sum() > 0
    lf_ = lf.clone().requires_grad_(); ac_id(lj, lf_, torch.tensor([0]), detach_f=False).backward(); assert lf_.grad.abs().sum() > 0
    # page cell: jx, fx = torch.tensor([[0.], [1.], [3.], [7.]]), torch.tenso
    jx, fx = torch.tensor([[0.], [1.], [3.], [7.]]), torch.tensor([[0.], [2.], [3.], [4.]])
    exp_j = (sp(-1) + sp(0) + sp(-1) + sp(-1) + sp(3) + sp(-1) + sp(3) + sp(-4)) / 4
    test_close(ac_triplet(jx, fx, y, mining='j'), exp_j, eps=1e-4)
    # mined in f: anchor 0: I+=1, I-=2; anchor 1: I+=0, I-=2; anchor 2: I+=3, I-=1; anchor 3: I+=2, I-=1
    exp_f = (sp(1-2) + sp(3-3) + sp(1-2) + sp(1-2) + sp(4-1) + sp(1-2) + sp(4-1) + sp(2-6)) / 4
    test_close(ac_triplet(jx, fx, y, mining='f'), exp_f, eps=1e-4)
    test_close(ac_triplet(jx, fx, y, mining='both'), (exp_j + exp_f) / 2, eps=1e-4)
    # separate: hardest distances of each space: j (d_ap 1,1,4,4; d_an 3,2,2,6), f (d_ap 2,2,1,1; d_an 3,1,1,2)
    exp_s = (sp(1-2) + sp(3-3) + sp(1-2) + sp(1-2) + sp(4-1) + sp(1-2) + sp(4-1) + sp(2-6)) / 4
    test_close(ac_triplet(jx, fx, y, mining='separate'), exp_s, eps=1e-4)
    test_fail(lambda: ac_triplet(jx, fx, y, mining='x'), contains="mining must be")
    {m: round(ac_triplet(jx, fx, y, mining=m).item(), 4) for m in ('j', 'f', 'both', 'separate')}
    # page cell: mh = MultiHeadLoss({'id': HeadTerm(LabelSmoothingCE(0.), 'lo
    mh = MultiHeadLoss({'id': HeadTerm(LabelSmoothingCE(0.), 'logits'), 'tri': HeadTerm(TripletLoss(), 'feat')},
                       weights={'tri': 2.})
    out = {'logits': torch.tensor([[0., 0.]] * 4), 'feat': x}
    test_close(mh(out, y), math.log(2) + 2 * 2.3 / 4, eps=1e-4)
    test_eq(sorted(mh.components), ['id', 'tri']); test_close(mh.components['tri'], 2.3 / 4, eps=1e-4)
    # a plain tensor (validation embeddings): batch-hard triplet on it, components untouched
    test_close(mh(x, y), 2.3 / 4, eps=1e-4); test_eq(sorted(mh.components), ['id', 'tri'])
    mh.reduction = 'none'   # what `get_preds(with_loss=True)` does: every term gives one value per image
    test_eq(mh(out, y).shape, (4,)); test_eq(mh(x, y).shape, (4,)); mh.reduction = 'mean'
    mh.components
    # page cell: uni = torch.zeros(4, 3)
    uni = torch.zeros(4, 3)
    out = {'j': jx, 'f': fx, 'g': jx, 'j_logits': uni, 'f_logits': uni,
           'attr_logits': {'color': torch.zeros(4, 2), 'type': torch.zeros(4, 5)}}
    yc, yt = torch.tensor([0, 0, 1, 1]), torch.tensor([2, 2, 2, -1])
    al = ANetLoss()
    L = al(out, y, yc, yt)
    c = al.components
    test_eq(sorted(c), ['ac_id', 'ac_tri', 'att_color', 'att_type', 'id_f', 'id_j', 'tri_f', 'tri_g', 'tri_j'])
    test_close(c['tri_j'], 2.3/4, eps=1e-4); test_close(c['id_j'], math.log(3)); test_close(c['att_type'], math.log(5))
    test_close(c['ac_id'], math.log(2), eps=1e-5)   # softplus(0)
    test_close(L, sum(c[k] for k in ['tri_j', 'id_j', 'tri_g', 'tri_f', 'id_f', 'att_color', 'att_type']), eps=1e-5)
    al.ameliorate = True
    L2 = al(out, y, yc, yt)
    test_close(L2, L + c['ac_tri'] + c['ac_id'] - (c['tri_f'] + c['id_f']), eps=1e-5)
    {k: round(v.item(), 4) for k, v in c.items()}, L, L2
