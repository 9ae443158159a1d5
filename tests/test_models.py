"Tests of fastreid_vehicle.models: shapes, gradients, splitter, loss composition and tiny training steps."
import pickle
import pytest, torch, torch.nn as nn

from fastreid_vehicle.models import *
from fastreid_vehicle.models import reid_loss
from fastreid_vehicle.losses import ANetLoss, BoTLoss, MFGNetLoss

torch.set_num_threads(1)

class TinyBackbone(nn.Module):
    "Stand-in backbone: (B, 3, H, W) -> (B, 32, H/4, W/4), with `.out_channels`."
    def __init__(self, c=32):
        super().__init__()
        self.out_channels = c
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, c, 3, 2, 1), nn.BatchNorm2d(c), nn.ReLU())
    def forward(self, x): return self.body(x)

N_IDS, ATTRS = 4, {'color': 3, 'type': 2}

def batch(h=32, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, h, w, generator=g)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    yc = torch.tensor([0, 0, 1, 1, 2, 2, -1, -1])
    yt = torch.tensor([1, 1, 0, 0, -1, 1, 0, 0])
    return x, y, yc, yt

def make(method, backbone=None, **kw):
    torch.manual_seed(0)
    return create_reid_model(method, N_IDS, ATTRS, backbone=backbone or TinyBackbone(), **kw)

# ---------------------------------------------------------------- shapes
def test_botnet_shapes():
    m = make('bot'); x, *_ = batch()
    out = m(x)
    assert set(out) == {'feat', 'bn_feat', 'logits'}
    assert out['feat'].shape == (8, 32) and out['logits'].shape == (8, N_IDS)
    m.eval()
    assert m(x).shape == (8, 32) == (8, m.embed_dim)
    assert torch.allclose(m(x), m.head(m.backbone(x))[0])   # the feature before the BN-neck (ModelConfig.neck_feat)
    m_after = make('bot', neck_feat='after').eval()
    assert torch.allclose(m_after(x), m_after.head(m_after.backbone(x))[1])   # post-BN feature when asked
    m2 = make('bot', neck_feat='before').eval()
    assert torch.allclose(m2(x), m2.head(m2.backbone(x))[0])
    with pytest.raises(ValueError, match="neck_feat"): make('bot', neck_feat='middle')

def test_botnet_gem():
    m = make('bot', pool='gem')
    assert any(n.endswith('pool.p') for n, _ in m.named_parameters())
    x, y, *_ = batch()
    BoTLoss()(m(x), y).backward()
    assert m.head.pool.p.grad is not None

@pytest.mark.parametrize("n_stripes", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("cam", ['se', 'danet'])
def test_mfgnet_stripes_and_cams(n_stripes, cam):
    m = make('mfgnet', n_stripes=n_stripes, cam=cam, global_dim=24, local_dim=16)
    x, y, *_ = batch()
    out = m(x)
    assert set(out) == {'feat', 'bn_feat', 'logits', 'local_feats', 'local_logits'}
    assert out['feat'].shape == (8, 24) and out['logits'].shape == (8, N_IDS)
    assert len(out['local_logits']) == n_stripes and all(l.shape == (8, N_IDS) for l in out['local_logits'])
    assert all(f.shape == (8, 16) for f in out['local_feats'])
    assert torch.isfinite(MFGNetLoss()(out, y))
    m.eval()
    assert m(x).shape == (8, 24 + 16 * n_stripes) == (8, m.embed_dim)

def test_mfgnet_stripes_see_their_rows_only():
    m = make('mfgnet', n_stripes=4, cam=None).eval()
    fmap = torch.rand(2, 32, 8, 4)
    m.backbone = nn.Identity(); m.backbone.out_channels = 32
    base = m(fmap)
    fmap2 = fmap.clone(); fmap2[:, :, 6:] += 1.   # change the last stripe's rows only
    emb2 = m(fmap2)
    g, l = 256, 256
    assert not torch.allclose(base[:, :g], emb2[:, :g])                  # global sees everything
    assert torch.allclose(base[:, g:g + 3 * l], emb2[:, g:g + 3 * l])    # stripes 1-3 unchanged
    assert not torch.allclose(base[:, g + 3 * l:], emb2[:, g + 3 * l:])

def test_mfgnet_ablation_switches_and_errors():
    x, *_ = batch()
    m = make('mfgnet', global_conv=False, local=False, cam=None).eval()
    assert m(x).shape == (8, 32) and len(m.local_heads) == 0 and isinstance(m.global_pre, nn.Identity)
    assert isinstance(make('mfgnet', cam=None).global_cam, nn.Identity)
    out = make('mfgnet', local=False)(x)
    assert out['local_logits'] == []
    with pytest.raises(ValueError, match="n_stripes"): make('mfgnet', n_stripes=0)
    with pytest.raises(ValueError, match="cam"): make('mfgnet', cam='cbam')

def test_anet_shapes():
    m = make('anet'); x, *_ = batch()
    out = m(x)
    assert set(out) == {'f', 'f_bn', 'f_logits', 'j', 'j_bn', 'j_logits', 'g', 'attr_feats', 'attr_logits'}
    assert out['f'].shape == out['j'].shape == (8, 512) and out['g'].shape == (8, 32)
    assert out['f_logits'].shape == out['j_logits'].shape == (8, N_IDS)
    assert {k: tuple(v.shape) for k, v in out['attr_logits'].items()} == {'color': (8, 3), 'type': (8, 2)}
    assert {k: tuple(v.shape) for k, v in out['attr_feats'].items()} == {'color': (8, 128), 'type': (8, 128)}
    m.eval()
    e = m(x)
    assert e.shape == (8, 512) and torch.allclose(e.norm(dim=1), torch.ones(8), atol=1e-5)
    sizes = make('anet', s_f=64, s_a=16, s_j=32)(x)
    assert sizes['f'].shape == (8, 64) and sizes['j'].shape == (8, 32) and sizes['attr_feats']['type'].shape == (8, 16)

def test_anet_attribute_branches_from_attr_classes():
    with pytest.raises(ValueError, match="at least one attribute"): ANet(N_IDS, {}, backbone=TinyBackbone())
    with pytest.raises(ValueError, match="at least one attribute"): ANet(N_IDS, None, backbone=TinyBackbone())
    with pytest.raises(ValueError, match="at least one attribute"): ANet(N_IDS, {'color': 0}, backbone=TinyBackbone())
    m = ANet(N_IDS, {'color': 0, 'type': 9}, backbone=TinyBackbone())
    assert m.attr_names == ['type'] and len(m.attr_heads) == 1
    x, y, yc, yt = batch()
    out = m(x)
    assert list(out['attr_logits']) == ['type']
    lf = ANetLoss()
    assert torch.isfinite(lf(out, y, yc, yt)) and 'att_type' in lf.components and 'att_color' not in lf.components

def test_anet_joint_feature_is_f_plus_greid():
    m = make('anet').eval()
    x, *_ = batch()
    with torch.no_grad():
        F_ = m.backbone(x)
        s = sum(att(F_) for att in m.attr_att)
        G = s + m.theta_A(s)
        J = F_ + m.theta_g1(m.theta_g2(G))
        j_bn = m.j_head(J)[1]
        assert torch.allclose(m(x), torch.nn.functional.normalize(j_bn, dim=1), atol=1e-6)
        # each attribute feature is F re-weighted per channel by its SE gate
        assert torch.allclose(m.attr_att[0](F_), F_ * m.attr_att[0].channel_weights(F_))

def test_backbone_argument():
    with pytest.raises(TypeError, match="out_channels"): BoTNet(N_IDS, backbone=nn.Flatten())
    with pytest.raises(TypeError, match="backbone"): BoTNet(N_IDS, backbone=3)
    with pytest.raises(ValueError, match="method"): create_reid_model('pcb', N_IDS)

def test_bnneck_has_no_bias():
    for method in list_methods():
        m = make(method)
        necks = [mod for mod in m.modules() if isinstance(mod, BNNeck)]
        assert necks and all(n.bias is None for n in necks)
        names = [n for n, _ in m.named_parameters()]
        assert not any(n.endswith('bnneck.bias') for n in names)

# ---------------------------------------------------------------- gradients, splitter
def _loss(method, m, x, y, yc, yt, **kw):
    return reid_loss(method, **kw)(m(x), y, yc, yt)

@pytest.mark.parametrize("method,kw", [('bot', {}), ('mfgnet', {}), ('mfgnet', {'cam': 'danet'}), ('anet', {})])
def test_gradients_reach_backbone_and_every_head(method, kw):
    m = make(method, **kw)
    x, y, yc, yt = batch()
    _loss(method, m, x, y, yc, yt).backward()
    for n, p in m.named_parameters():
        assert p.grad is not None, f"{method}: no gradient for {n}"
        assert torch.isfinite(p.grad).all(), n
    # every top-level child (backbone and each head) gets a non-zero gradient
    for name, child in m.named_children():
        ps = [p for p in child.parameters()]
        if ps: assert sum(p.grad.abs().sum() for p in ps) > 0, f"{method}: zero gradient in {name}"

@pytest.mark.parametrize("method", ['bot', 'mfgnet', 'anet'])
def test_splitter_covers_every_parameter_once(method):
    m = make(method)
    bb, heads = reid_splitter(m)
    ids_bb, ids_h = [id(p) for p in bb], [id(p) for p in heads]
    assert len(set(ids_bb)) == len(ids_bb) and len(set(ids_h)) == len(ids_h)
    assert not set(ids_bb) & set(ids_h)
    assert set(ids_bb) | set(ids_h) == {id(p) for p in m.parameters()}
    assert set(ids_bb) == {id(p) for p in m.backbone.parameters()} and heads

# ---------------------------------------------------------------- losses on real model outputs
def test_anet_batch_without_attributes_is_nan_free():
    m = make('anet')
    x, y, *_ = batch()
    none = torch.full((8,), -1)
    lf = ANetLoss()
    loss = lf(m(x), y, none, none)
    assert torch.isfinite(loss)
    assert all(lf.components[k] == 0 for k in ('att_color', 'att_type', 'tri_g'))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)

def test_anet_second_stage_composition_on_model_output():
    m = make('anet')
    x, y, yc, yt = batch()
    out = m(x)
    lf = ANetLoss()
    L = lf(out, y, yc, yt); c = dict(lf.components)
    lf.ameliorate = True
    L2 = lf(out, y, yc, yt)
    assert torch.allclose(L2, L + c['ac_tri'] + c['ac_id'] - (c['tri_f'] + c['id_f']), atol=1e-5)
    m.zero_grad(); L2.backward()
    # f's own head only meets the (detached) constraints and the disabled f losses: no gradient
    assert all(p.grad is None for p in m.f_head.parameters())
    assert all(p.grad is not None for p in m.j_head.parameters())

def test_eval_embeddings_with_loss_tensor_path():
    for method in list_methods():
        m = make(method).eval()
        x, y, yc, yt = batch()
        v = reid_loss(method)(m(x), y, yc, yt)
        assert v.ndim == 0 and torch.isfinite(v)

@pytest.mark.parametrize("method", ['bot', 'mfgnet', 'anet'])
def test_sgd_steps_reduce_the_loss(method):
    m = make(method)
    x, y, yc, yt = batch()
    lf = reid_loss(method)
    opt = torch.optim.SGD(m.parameters(), lr=0.02, momentum=0.9)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = lf(m(x), y, yc, yt)
        loss.backward(); opt.step()
        losses.append(loss.item())
    with torch.no_grad(): final = lf(m(x), y, yc, yt).item()
    assert final < 0.9 * losses[0], (method, losses, final)

def test_pickle_round_trip_gives_identical_embeddings():
    for method in list_methods():
        m = make(method).eval()
        x, *_ = batch()
        m2 = pickle.loads(pickle.dumps(m))
        assert torch.equal(m(x), m2(x))

# ---------------------------------------------------------------- real backbone through create_backbone
@pytest.mark.parametrize("method", ['bot', 'mfgnet', 'anet'])
def test_resnet18_backbone_by_name(method):
    torch.manual_seed(0)
    m = create_reid_model(method, N_IDS, {'color': 10, 'type': 9}, backbone='resnet18', pretrained=False, n_stripes=4) if method == 'mfgnet' \
        else create_reid_model(method, N_IDS, {'color': 10, 'type': 9}, backbone='resnet18', pretrained=False)
    assert m.backbone.out_channels == 512
    x = torch.randn(4, 3, 64, 32)
    y = torch.tensor([0, 0, 1, 1])
    out = m(x)
    reid_loss(method)(out, y, torch.tensor([0, 1, 2, -1]), torch.tensor([3, 3, 4, 4])).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.backbone.parameters())
    m.eval()
    with torch.no_grad(): assert m(x).shape == (4, m.embed_dim)

# ---------------------------------------------------------------- mixed precision
def test_danet_affinity_does_not_overflow_in_half():
    cam = DANetCAM(); 
    with torch.no_grad(): cam.gamma.fill_(1.)
    x = (torch.rand(1, 16, 16, 16) * 60).half()   # sum_k x_ik x_jk ~ 256 * 60^2 / 4 > float16 max (65504)
    assert torch.isinf((x.float().reshape(1, 16, -1) @ x.float().reshape(1, 16, -1).transpose(1, 2)).half()).any()
    out = cam(x)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()

@pytest.mark.parametrize("method,kw", [('bot', {}), ('mfgnet', {'cam': 'danet'}), ('anet', {})])
def test_bf16_autocast_forward_and_loss(method, kw):
    m = make(method, **kw)
    x, y, yc, yt = batch()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = reid_loss(method)(m(x), y, yc, yt)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_paper_switches_bnneck_classifier_bias_shared_cam():
    "MFG-Net's own design: no BN-neck, classifiers with a bias, one channel attention for the local branch"
    x, y, yc, yt = batch()
    m = make('mfgnet', bnneck=False, cls_bias=True, local_cam='shared')
    assert len(m.local_cams) == 1 and not any(isinstance(mod, BNNeck) for mod in m.modules())
    assert all(h.classifier.bias is not None for h in [m.global_head, *m.local_heads])
    out = m(x)
    assert out['bn_feat'] is out['feat']
    reid_loss('mfgnet')(out, y, yc, yt).backward()
    assert m.local_cams[0].fc1.weight.grad is not None          # the shared attention learns from every stripe
    m.eval()
    e = m(x)
    torch.testing.assert_close(e[:, :256], m.global_head.fc(m.global_head.pool(m.global_cam(m.global_pre(m.backbone(x))))))
    # the shared attention acts on the map before the split: stripe i of the local branch sees cam(F)[rows of i]
    f = m.backbone(x); lm = m.local_cams[0](f)
    torch.testing.assert_close(e[:, 256:512], m.local_heads[0].fc(m.local_heads[0].pool(lm[:, :, :2])))
    # defaults unchanged: BN-neck, bias-free classifier, one attention per stripe
    d = make('mfgnet')
    assert len(d.local_cams) == 4 and isinstance(d.global_head.bnneck, BNNeck) and d.global_head.classifier.bias is None
    with pytest.raises(ValueError, match='local_cam'): make('mfgnet', local_cam='each')

@pytest.mark.parametrize('method,kw,spec', [
    ('bot', {}, {'feature': 'feat', 'distance': 'cosine'}),   # ModelConfig.neck_feat: 'before' the BN-neck
    ('bot', {'neck_feat': 'after'}, {'feature': 'bn_feat', 'distance': 'cosine'}),
    ('bot', {'bnneck': False, 'neck_feat': 'after'}, {'feature': 'feat', 'distance': 'cosine'}),
    ('mfgnet', {'eval_distance': 'euclidean', 'neck_feat': 'before'}, {'feature': 'cat(feat, 4 local)', 'distance': 'euclidean'}),
    ('anet', {'neck_feat': 'before'}, {'feature': 'l2norm(j)', 'distance': 'cosine'}),
    ('anet', {'neck_feat': 'after'}, {'feature': 'l2norm(j_bn)', 'distance': 'cosine'})])
def test_models_say_their_eval_feature_and_distance(method, kw, spec):
    from fastreid_vehicle.metrics import model_eval_spec
    m = make(method, **kw)
    assert m.eval_spec() == spec and model_eval_spec(m) == spec
    head = {'bot': 'head', 'mfgnet': 'global_head', 'anet': 'j_head'}[method]
    seen = []
    getattr(m, head).register_forward_hook(lambda mod, i, o: seen.append(o))
    x, *_ = batch()
    e = m.eval()(x)
    feat, bn_feat, _ = seen[-1]   # the head's (feature, BN-neck output, logits)
    want = bn_feat if 'bn_feat' in spec['feature'] or 'j_bn' in spec['feature'] else feat
    if method == 'anet': want = torch.nn.functional.normalize(want, dim=1)
    torch.testing.assert_close(e[:, :want.shape[1]], want)
    with pytest.raises(ValueError, match='eval_distance'): make(method, eval_distance='hamming')

def test_local_ce_sum_or_mean_under_one_alpha():
    x, y, yc, yt = batch()
    out = make('mfgnet')(x)
    s, mn = MFGNetLoss(local_reduce='sum'), MFGNetLoss(local_reduce='mean')
    s(out, y); mn(out, y)
    torch.testing.assert_close(s.components['id_local'], 4 * mn.components['id_local'])
    assert s.weight('id_local') == s.weight('id_global') == 1.
    with pytest.raises(ValueError, match='local_reduce'): MFGNetLoss(local_reduce='max')

def test_arch_keyword_is_refused_with_the_new_name():
    from fastreid_vehicle.learner import split_settings
    with pytest.raises(TypeError, match="'method'"): split_settings('bot', {'arch': 'mfgnet'})

# ---------------------------------------------------------------- the method registry
def test_registry_lists_gets_and_refuses_unknown_methods():
    assert list_methods() == ['anet', 'bot', 'mfgnet'] and list_methods('*net') == ['anet', 'mfgnet']
    m = get_method('mfgnet')
    assert (m.model, m.loss, m.splitter, m.distance) == (MFGNet, MFGNetLoss, reid_splitter, 'cosine')
    for f in (get_method, reid_loss, lambda n: create_reid_model(n, N_IDS, backbone=TinyBackbone())):
        with pytest.raises(ValueError, match=r"method must be one of \['anet', 'bot', 'mfgnet'\], got 'pcb'"): f('pcb')

def test_method_settings_are_the_model_and_loss_keywords():
    s = method_settings('anet')
    assert s['model']['s_j'] == 512 and s['model']['neck_feat'] == 'before' and s['model']['last_stride'] == 1
    assert s['loss']['lambda_G'] == 1. and s['loss']['l2'] is False
    assert not {'n_ids', 'attr_classes', 'backbone', 'pretrained', 'weights', 'kwargs'} & set(s['model'])
    # what method_settings lists is exactly what the factories accept
    make('anet', **{k: v for k, v in s['model'].items()})
    reid_loss('anet', **s['loss'])

def test_register_method_adds_a_method_everything_reads():
    from fastreid_vehicle.models import _METHODS
    from fastreid_vehicle.learner import split_settings
    def heads_only(model): return [list(model.parameters())]
    try:
        @register_method('bot_euclid', loss=BoTLoss, splitter=heads_only, distance='euclidean')
        class BoTEuclid(BoTNet): "BoTNet ranked by the euclidean distance"
        assert 'bot_euclid' in list_methods() and get_method('bot_euclid').splitter is heads_only
        m = create_reid_model('bot_euclid', N_IDS, backbone=TinyBackbone())
        assert type(m) is BoTEuclid and m.eval_spec()['distance'] == 'euclidean'
        assert split_settings('bot_euclid', {'pool': 'gem', 'w_tri': 2.}) == ({'pool': 'gem'}, {'w_tri': 2.})
    finally: _METHODS.pop('bot_euclid', None)
    with pytest.raises(TypeError, match='MultiHeadLoss'): register_method('x', loss=nn.MSELoss)
    with pytest.raises(ValueError, match='distance'): register_method('x', loss=BoTLoss, distance='l1')
    with pytest.raises(TypeError, match='ReidModel'): register_method('x', loss=BoTLoss)(nn.Linear)
    assert 'x' not in list_methods()

def test_conv_block_is_timms_conv_norm_act_with_the_former_init():
    "timm's ConvNormAct replaced the hand-written conv-BN-ReLU: same parameters and initial values, timm's key names"
    class ConvBNReLU(nn.Sequential):   # the former block
        def __init__(self, cin, cout, k=1):
            super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
            self.apply(init_kaiming)
    for k in (1, 3):
        torch.manual_seed(k); old = ConvBNReLU(16, 24, k)
        torch.manual_seed(k); new = conv_block(16, 24, k)
        so, sn = old.state_dict(), new.state_dict()
        assert [k.replace('0.', 'conv.').replace('1.', 'bn.') for k in so] == list(sn)
        assert all(torch.equal(a, b) for a, b in zip(so.values(), sn.values()))
        x = torch.randn(2, 16, 5, 5)
        assert torch.equal(old(x), new(x))
    assert sum(p.numel() for p in make('anet').theta_g1.parameters()) == 32 * 32 * 9 + 2 * 32


# ---------------------------------------------------------------- checks moved from nbs/08_models.ipynb
import torch.nn.functional as F
from fastreid_vehicle.models import BNNeck, make_pool, SEAttention, DANetCAM, channel_attention, EmbeddingHead, conv_block, \
    get_backbone, stripe_bounds, list_methods, get_method, method_settings, reid_splitter, create_reid_model


def test_building_blocks_worked_examples():
    bn = BNNeck(8)
    assert [n for n, _ in bn.named_parameters()] == ['weight'] and bn.bias is None and 'bias' not in bn.state_dict()
    torch.testing.assert_close(bn(torch.randn(16, 8) * 3 + 5).mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    fm = torch.rand(2, 4, 3, 5)
    torch.testing.assert_close(make_pool('avg')(fm), fm.mean((2, 3))); torch.testing.assert_close(make_pool('max')(fm), fm.amax((2, 3)))
    torch.testing.assert_close(make_pool('gem')(fm), fm.pow(3).mean((2, 3)).pow(1/3), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='pool must be'): make_pool('median')
    fm = torch.randn(2, 32, 4, 2)
    se = SEAttention(32); g = se.channel_weights(fm)
    assert g.shape == (2, 32, 1, 1) and ((g > 0) & (g < 1)).all() and len(se.fc1.weight) == 2
    torch.testing.assert_close(se(fm), fm * g)
    da = DANetCAM(32); torch.testing.assert_close(da(fm), fm)   # gamma = 0: identity at initialisation
    with torch.no_grad(): da.gamma.fill_(1.)
    q = fm.reshape(2, 32, -1); e = q @ q.transpose(1, 2)
    torch.testing.assert_close(da(fm), (torch.softmax(e.max(-1, keepdim=True).values - e, -1) @ q).reshape(fm.shape) + fm,
                               atol=1e-4, rtol=1e-4)
    assert type(channel_attention(None, 32)) is nn.Identity
    with pytest.raises(Exception): channel_attention('cbam', 32)
    h = EmbeddingHead(32, 5, dim=16)
    feat, bnf, logits = h(torch.rand(8, 32, 4, 2))
    assert (feat.shape, bnf.shape, logits.shape) == ((8, 16), (8, 16), (8, 5))
    h.eval(); assert h(torch.rand(2, 32, 4, 2))[2] is None
    hp = EmbeddingHead(32, 5, dim=16, bnneck=False, cls_bias=True)
    f2, b2, _ = hp(torch.rand(8, 32, 4, 2)); assert b2 is f2 and hp.classifier.bias.shape == (5,)
    assert EmbeddingHead(32, 5).dim == 32 and conv_block(4, 6, 3)(torch.rand(1, 4, 5, 5)).shape == (1, 6, 5, 5)
    assert get_backbone(TinyBackbone()).out_channels == 32
    with pytest.raises(Exception, match='out_channels'): get_backbone(nn.Flatten())


def test_models_worked_examples():
    xb, yb, yc, yt = batch()
    m = BoTNet(4, backbone=TinyBackbone()); out = m(xb)
    assert {k: tuple(v.shape) for k, v in out.items()} == {'feat': (8, 32), 'bn_feat': (8, 32), 'logits': (8, 4)}
    BoTLoss()(out, yb).backward()
    m.eval(); assert m(xb).shape == (8, m.embed_dim) and m.eval_spec() == {'feature': 'feat', 'distance': 'cosine'}
    assert BoTNet(4, backbone=TinyBackbone(), neck_feat='after').eval_spec() == {'feature': 'bn_feat', 'distance': 'cosine'}
    with pytest.raises(Exception, match='eval_distance'): BoTNet(4, backbone=TinyBackbone(), eval_distance='l1')
    assert stripe_bounds(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert stripe_bounds(6, 4) == [(0, 2), (1, 3), (3, 5), (4, 6)] and stripe_bounds(2, 3) == [(0, 1), (0, 2), (1, 2)]
    m = MFGNet(4, backbone=TinyBackbone()); out = m(xb)
    assert len(out['local_logits']) == 4 and out['feat'].shape == (8, 256) and out['local_logits'][0].shape == (8, 4)
    MFGNetLoss()(out, yb).backward()
    m.eval(); assert m(xb).shape == (8, 1280) and m.embed_dim == 1280
    assert MFGNet(4, backbone=TinyBackbone(), global_conv=False, local=False, cam=None).eval()(xb).shape == (8, 32)
    mp = MFGNet(4, backbone=TinyBackbone(), bnneck=False, cls_bias=True, local_cam='shared', eval_distance='euclidean')
    assert len(mp.local_cams) == 1 and mp.eval_spec() == {'feature': 'cat(feat, 4 local)', 'distance': 'euclidean'}
    op = mp(xb); assert op['bn_feat'] is op['feat']; MFGNetLoss()(op, yb).backward()
    with pytest.raises(Exception, match='local_cam'): MFGNet(4, backbone=TinyBackbone(), local_cam='each')
    m = ANet(4, {'color': 3, 'type': 2}, backbone=TinyBackbone()); out = m(xb)
    assert out['j'].shape == (8, 512) and out['f'].shape == (8, 512) and out['g'].shape == (8, 32)
    assert {k: v.shape[1] for k, v in out['attr_logits'].items()} == {'color': 3, 'type': 2}
    assert out['attr_feats']['color'].shape == (8, 128)
    ANetLoss()(out, yb, yc, torch.tensor([1, 1, 0, 0, 1, 1, 0, 0])).backward()
    m.eval(); e = m(xb)
    assert e.shape == (8, 512); torch.testing.assert_close(e.norm(dim=1), torch.ones(8), atol=1e-5, rtol=0)
    with pytest.raises(Exception, match='at least one attribute'): ANet(4, {}, backbone=TinyBackbone())
    assert m.eval_spec() == {'feature': 'l2norm(j)', 'distance': 'cosine'}
    assert ANet(4, {'color': 3}, backbone=TinyBackbone(), neck_feat='before').eval_feature == 'l2norm(j)'
    assert ANet(4, {'color': 3, 'type': 0}, backbone=TinyBackbone()).attr_names == ['color']


def test_factory_worked_examples():
    m = create_reid_model('mfgnet', 4, backbone=TinyBackbone(), n_stripes=2)
    groups = reid_splitter(m)
    assert len(groups[0]) == len(list(m.backbone.parameters())) and sum(len(g) for g in groups) == len(list(m.parameters()))
    assert list_methods() == ['anet', 'bot', 'mfgnet'] and list_methods('*net') == ['anet', 'mfgnet']
    assert type(reid_loss('mfgnet')) is get_method('mfgnet').loss and reid_loss('mfgnet').weight('tri') == 0.1
    assert reid_loss('anet', lambda_G=2.).weight('tri_g') == 2.
    with pytest.raises(Exception, match=r"method must be one of \['anet', 'bot', 'mfgnet'\]"):
        create_reid_model('pcb', 4, backbone=TinyBackbone())
    with pytest.raises(Exception, match='method must be one of'): reid_loss('resnet')
    s = method_settings('mfgnet')
    assert (s['model']['n_stripes'], s['model']['neck_feat'], s['loss']['beta']) == (4, 'before', 0.1)
    assert 'backbone' not in s['model'] and 'n_ids' not in s['model']
