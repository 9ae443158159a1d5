"Checks moved from nbs/06_backbones.ipynb, run in the module's namespace as the notebook ran them."
import tempfile, warnings
from pathlib import Path
import pytest, torch, torch.nn as nn, timm
from fastreid_vehicle import backbones as _B
globals().update({k: v for k, v in vars(_B).items() if not k.startswith('__')})
torch.set_num_threads(1)


def test_ibn_layer_and_block(tmp_path):
    from fastcore.test import test_eq, test_fail
    tmp = tmp_path
    torch.manual_seed(0)
    ibn = IBN(64)
    test_eq((ibn.IN.num_features, ibn.BN.num_features), (32, 32))
    test_eq(sorted(ibn.state_dict()), ['BN.bias', 'BN.num_batches_tracked', 'BN.running_mean', 'BN.running_var', 'BN.weight', 'IN.bias', 'IN.weight'])
    x = torch.randn(4, 64, 8, 8)*3 + 1
    y = ibn(x)
    test_eq(y.shape, x.shape)
    assert torch.allclose(y[:, :32].mean((2, 3)), torch.zeros(4, 32), atol=1e-5)   # IN: per image and channel
    assert torch.allclose(y[:, 32:].mean((0, 2, 3)), torch.zeros(32), atol=1e-5)   # BN: per channel over the batch
    assert not torch.allclose(y[:, 32:].mean((2, 3)), torch.zeros(4, 32), atol=1e-3)
    test_eq(IBN(63).half, 31)
    test_fail(lambda: IBN(64, ratio=1.0), contains='ratio')
    blk = BottleneckIBN(64, 64, ibn='a', downsample=nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256)))
    test_eq(blk(torch.randn(2, 64, 8, 8)).shape, (2, 256, 8, 8))
    assert isinstance(blk.bn1, IBN) and isinstance(BottleneckIBN(256, 64).bn1, nn.BatchNorm2d)
    test_fail(lambda: BottleneckIBN(64, 64, ibn='b'), contains='IBN-b')


def test_ibn_resnet_registry_torchvision_weights_and_errors(tmp_path):
    from fastcore.test import test_eq, test_fail
    tmp = tmp_path
    torch.manual_seed(0)
    m = resnet50_ibn_a()
    ibns = {n: mod for n, mod in m.named_modules() if isinstance(mod, IBN)}
    test_eq(len(ibns), 3 + 4 + 6)
    assert all(n.startswith(('layer1.', 'layer2.', 'layer3.')) and n.endswith('.bn1') for n in ibns)
    test_eq({n.split('.')[0]: mod.IN.num_features for n, mod in ibns.items()}, {'layer1': 32, 'layer2': 64, 'layer3': 128})
    assert isinstance(m.layer4[0].bn1, nn.BatchNorm2d) and isinstance(m.bn1, nn.BatchNorm2d)
    sd = m.state_dict()
    test_eq(sd['layer1.0.bn1.IN.weight'].shape, (32,))
    test_eq(sd['layer1.0.bn1.BN.running_mean'].shape, (32,))
    test_eq(sd['layer4.0.bn1.weight'].shape, (512,))
    test_eq(sd['fc.weight'].shape, (1000, 2048))
    test_eq(m(torch.randn(2, 3, 64, 64)).shape, (2, 1000))
    test_eq(len([k for k in sd if not k.endswith('num_batches_tracked')]), 293)
    m.layer1[0]
    from fastai.vision.learner import create_timm_model
    t = timm.create_model('resnet50_ibn_a', num_classes=0, global_pool='', last_stride=1)   # through timm's registry
    assert isinstance(t, ResNetIBN) and t.last_stride == 1 and 'resnet50_ibn_a' in timm.list_models('*ibn_a')
    test_eq(t(torch.randn(1, 3, 64, 32)).shape, (1, 2048, 4, 2))
    body_head, cfg = create_timm_model('resnet50_ibn_a', 10, pretrained=False)   # what vision_learner does with the name
    test_eq(body_head.eval()(torch.randn(2, 3, 64, 64)).shape, (2, 10)); test_eq(cfg['mean'], (0.485, 0.456, 0.406))
    import torchvision
    tv_sd = torchvision.models.resnet50(weights=None).state_dict()
    tmp = Path(tempfile.mkdtemp())
    torch.save({'state_dict': {f'module.{k}': v for k, v in tv_sd.items()}}, tmp/'tv_r50.pth')
    r50 = load_backbone_weights(timm.create_model('resnet50', num_classes=0, global_pool=''), tmp/'tv_r50.pth')
    assert all(torch.equal(v, tv_sd[k]) for k, v in r50.state_dict().items())
    test_fail(lambda: read_state_dict(tmp/'nope.pth'), contains='not found')
    try: load_backbone_weights(m, tmp/'tv_r50.pth'); msg = ''
    except WeightsError as e: msg = str(e)
    assert 'plain ResNet weights' in msg and 'layer1.0.bn1.IN.weight' in msg
    print(msg.replace(str(tmp), '/tmp/...'))
    official = {k: torch.rand_like(v) + 0.5 if k.endswith('running_var') else torch.randn_like(v)
                for k, v in m.state_dict().items() if not k.endswith('num_batches_tracked')}
    torch.save(official, tmp/'resnet50_ibn_a-d9d0bb7b.pth')
    ibn50 = create_backbone('resnet50_ibn_a', weights=tmp/'resnet50_ibn_a-d9d0bb7b.pth')
    assert all(torch.equal(v, official[k]) for k, v in ibn50.state_dict().items() if k in official)
    test_eq(ibn50.out_channels, 2048)
    test_eq(ibn50(torch.randn(2, 3, 64, 32)).shape, (2, 2048, 4, 2))
    test_eq(create_backbone('resnet50_ibn_a', last_stride=2)(torch.randn(2, 3, 64, 32)).shape, (2, 2048, 2, 1))


def test_remove_last_stride_examples(tmp_path):
    from fastcore.test import test_eq, test_fail
    tmp = tmp_path
    torch.manual_seed(0)
    r50 = timm.create_model('resnet50', num_classes=0, global_pool='')
    assert remove_last_stride(r50)
    test_eq([n for n, mod in r50.named_modules() if isinstance(mod, nn.Conv2d) and mod.stride == (2, 2)],
            ['conv1', 'layer2.0.conv2', 'layer2.0.downsample.0', 'layer3.0.conv2', 'layer3.0.downsample.0'])
    test_eq(r50(torch.randn(1, 3, 64, 32)).shape, (1, 2048, 4, 2))
    test_eq(r50.feature_info[-1]['reduction'], 16)
    assert remove_last_stride(r50)  # idempotent: nothing left to change
    r26d = timm.create_model('resnet26d', num_classes=0, global_pool='')
    assert remove_last_stride(r26d) and isinstance(r26d.layer4[0].downsample[0], nn.Identity)
    test_eq(r26d(torch.randn(1, 3, 64, 32)).shape, (1, 2048, 4, 2))
    cnx = timm.create_model('convnext_atto', num_classes=0, global_pool='')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        assert not remove_last_stride(cnx)
    assert 'stages.3.downsample.1' in str(w[0].message)
    test_eq(cnx(torch.randn(1, 3, 64, 32)).shape, (1, 320, 2, 1))


def test_packaged_weights_examples(tmp_path):
    from fastcore.test import test_eq, test_fail
    tmp = tmp_path
    torch.manual_seed(0)
    lite0_file = packaged_weights_file('tf_efficientnet_lite0')
    test_eq(lite0_file.name, 'efficientnet-lite0-57934424.pth')
    test_fail(lambda: packaged_weights_file('resnet50'), contains='tf_efficientnet_lite0')
    lite0_file.relative_to(lite0_file.parents[2]), f'{lite0_file.stat().st_size/1e6:.1f} MB'
    lite0_sd = read_state_dict(lite0_file)
    lite0 = timm.create_model('tf_efficientnet_lite0')
    mapped = map_state_dict_by_order(lite0_sd, lite0, source=lite0_file)
    test_eq(len(mapped), 296)
    test_eq(list(mapped)[:2], ['conv_stem.weight', 'bn1.weight'])
    assert torch.equal(mapped['classifier.weight'], lite0_sd['_fc.weight'])
    try: map_state_dict_by_order(lite0_sd, timm.create_model('tf_efficientnet_lite1'), source=lite0_file); msg = ''
    except WeightsError as e: msg = str(e)
    assert lite0_file.name in msg and '_blocks.3._depthwise_conv.weight' in msg
    print(msg.replace(str(lite0_file.parent), '...'))
    from skimage import data as skdata
    from PIL import Image
    from timm.data import create_transform, resolve_data_config
    import pandas as pd

    PHOTOS = {'chelsea': (skdata.chelsea(), list(range(281, 286))), 'coffee': (skdata.coffee(), [967])}
    IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

    def class_probs(model, img, **cfg):
        "ImageNet class probabilities of `model` for the RGB array `img`, with timm's eval transform (`cfg` overrides it)"
        tfm = create_transform(**resolve_data_config(cfg, model=model))
        with torch.no_grad(): return model.eval()(tfm(Image.fromarray(img))[None]).softmax(-1)[0]

    rows = []
    for name in PACKAGED_WEIGHTS:
        net = packaged_imagenet_model(name)
        test_eq(net.norm_stats, ((0.5,)*3, (0.5,)*3))
        right = {}
        for photo, (img, ok) in PHOTOS.items():
            own, imnet = class_probs(net, img), class_probs(net, img, **IMAGENET)
            assert own.argmax() in ok and imnet.argmax() in ok
            right[photo] = own[ok].sum().item(), imnet[ok].sum().item()
            rows.append((name, photo, own.topk(5).indices.tolist(), round(right[photo][0], 3),
                         imnet.topk(5).indices.tolist(), round(right[photo][1], 3)))
        assert sum(o for o, _ in right.values()) > sum(i for _, i in right.values())
    torch.manual_seed(0)
    rnd = class_probs(timm.create_model('tf_efficientnet_lite0'), skdata.coffee())
    assert rnd.argmax() != 967 and rnd.max() < 0.1
    pd.set_option('display.width', 160, 'display.max_columns', 10)
    pd.DataFrame(rows, columns=['model', 'photo', 'top-5, mean/std 0.5', 'p(right)', 'top-5, ImageNet mean/std', 'p(right) '])
    bb = create_backbone('tf_efficientnet_lite0', pretrained=True)
    test_eq(bb.pretrained_cfg['file'], str(lite0_file))
    test_eq(len(bb.state_dict()), 296 - 2)
    assert all(torch.equal(v, w) for v, w in zip(bb.state_dict().values(), lite0_sd.values()))
    test_eq(bb(torch.randn(2, 3, 64, 32)).shape, (2, 1280, 4, 2))
    bb.out_channels, bb.last_stride, bb.norm_stats


def test_create_backbone_examples(tmp_path):
    from fastcore.test import test_eq, test_fail
    tmp = tmp_path
    torch.manual_seed(0)
    bb = create_backbone('resnet50')
    test_eq((bb.out_channels, bb.last_stride), (2048, 1))
    test_eq(bb(torch.randn(2, 3, 64, 32)).shape, (2, 2048, 4, 2))
    assert not any(k.startswith('fc.') for k in bb.state_dict())
    bb.out_channels, bb.last_stride, bb(torch.randn(2, 3, 256, 128)).shape
    for arch, chans in [('resnet18', 512), ('efficientnet_b0', 1280)]:
        bb = create_backbone(arch)
        test_eq(bb(torch.randn(2, 3, 64, 32)).shape, (2, chans, 4, 2))
    test_fail(lambda: create_backbone('resnet5O'), contains='Unknown backbone')
    test_fail(lambda: create_backbone('vit_tiny_patch16_224'), contains='not a CNN')


def test_torchvision_weights_file_follows_torch_home(tmp_path):
    from fastcore.test import test_eq
    from fastcore.xtras import modified_env
    with modified_env(TORCH_HOME=str(tmp_path/'torch')):
        test_eq(torchvision_weights_file('resnet18'), tmp_path/'torch'/'hub'/'checkpoints'/'resnet18-f37072fd.pth')
