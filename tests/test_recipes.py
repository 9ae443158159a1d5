"""The papers' recipes (`fastreid_vehicle.recipes`) against the papers, and a tiny run of every recipe through `train()`.

`PAPER` below is written from the papers (/work/shared/papers: mfg-net.md, attributenet.md), independently of the
recipes module: every value a recipe marks as the paper's must be in this table and equal to it, and every value of
this table must be in the recipe."""
import json, tempfile
from pathlib import Path
import pytest, torch
from fastreid_vehicle.recipes import RECIPES, get_recipe, recipe_args, recipe_table
from fastreid_vehicle.config import build_settings

_MFG = {   # MFG-Net, what every dataset shares (section of the paper)
    'method': ('mfgnet', 'Sec. 2.2'),
    'size': ((384, 128), 'Sec. 4.2: resized to 384 x 128'),
    'pad': (0, 'Sec. 4.2: random erasure and horizontal flipping only'), 'zoom_p': (0., 'Sec. 4.2: no zoom'),
    'opt': ('amsgrad', 'Sec. 4.2: Amsgrad'), 'lr': (3e-4, 'Sec. 4.2: initial learning rate 0.0003'),
    'schedule': ('step', 'Sec. 4.4-4.6: x0.1 after given epochs'), 'stage2_epochs': (0, 'one stage'),
    'eps': (0., 'Sec. 2.3 Eq. 1: plain softmax cross-entropy'),
    'alpha': (1., 'Sec. 4.2'), 'beta': (0.1, 'Sec. 4.2'), 'margin': (0.3, 'Sec. 4.2: delta = 0.3'),
    'n_stripes': (4, 'Sec. 2.2: four blocks'), 'global_conv': (True, 'Sec. 2.2: 1x1 conv before and after GAP'),
    'local': (True, 'Sec. 2.2: local branch'),
    'eval_distance': ('euclidean', 'Sec. 2.1: Euclidean distance'),
}
_MFG_DATA = {   # recipe -> (dataset, train batch, test batch, lr milestones, epochs), Sec. 4.4 / 4.5 / 4.6
    'mfgnet-veri776': ('veri776', 48, 48, (10, 20), 30),
    'mfgnet-vehicleid': ('vehicleid', 24, 32, (15, 30), 40),
    'mfgnet-vric': ('vric', 32, 32, (15, 30), 40),
}
_ANET = {   # AttributeNet, one recipe for every dataset (Sec. 4.2, Sec. 4.3.4, Eq. 8 and 13)
    'method': ('anet', 'Sec. 3'),
    'size': ((256, 256), 'Sec. 4.2: 256x256'), 'P': (128, 'Sec. 4.2: batch 512, 4 images per ID'),
    'K': (4, 'Sec. 4.2: 4 images per ID'), 'pad': (0, 'Sec. 4.2: flip, zoom, erasing only'),
    'opt': ('amsgrad', 'Sec. 4.2'), 'lr': (6e-4, 'Sec. 4.2: 0.0006'), 'schedule': ('step', 'Sec. 4.2'),
    'milestones': ((60, 120, 150), 'Sec. 4.2: decayed by 0.1 at 60, 120 and 150'),
    'epochs': (150, 'Sec. 4.2: first step, 150 epochs'), 'stage2_epochs': (60, 'Sec. 4.2: second step, 60 epochs'),
    'lambda_': (1., 'Sec. 4.3.4'), 'lambda_A': (1., 'Sec. 4.3.4'), 'lambda_G': (1., 'Sec. 4.3.4'),
    'w_ac_tri': (1., 'Eq. 13'), 'w_ac_id': (1., 'Eq. 13'),
    's_f': (512, 'Sec. 4.2'), 's_j': (512, 'Sec. 4.2'), 's_a': (128, 'Sec. 4.2'), 'se_reduction': (16, 'Sec. 4.2'),
    'neck_feat': ('before', 'Eq. 8: j is the final feature'), 'eval_distance': ('cosine', 'Sec. 4.2: L2-normalised'),
}

def paper_table(name:str) -> dict:
    "The values the paper states for recipe `name`: setting -> (value, section)"
    if name.startswith('mfgnet-'):
        ds, bs, bs_test, ms, ep = _MFG_DATA[name]
        sec = {'veri776': 'Sec. 4.4', 'vehicleid': 'Sec. 4.5', 'vric': 'Sec. 4.6'}[ds]
        return {**_MFG, 'dataset': (ds, 'Sec. 4.1'),
                'bs_valid': (bs_test, f'{sec}: test batch {bs_test}'), 'milestones': (ms, sec), 'epochs': (ep, sec)}
    ds = name.split('-', 1)[1]
    extra = {} if ds == 'vehicleid' else {'attrs': (('color', 'type'), 'Sec. 4.2: n = 2, colour and type')}
    return {**_ANET, 'dataset': (ds, 'Sec. 4.1'), **extra}

# what the MFG-Net recipes take that the paper does not say: the library's reading of it, tagged 'library'
_MFG_INFERRED = {'local_cam': 'shared', 'bnneck': False, 'cls_bias': True, 'neck_feat': 'before'}

NAMES = ['mfgnet-veri776', 'mfgnet-vehicleid', 'mfgnet-vric', 'anet-veri776', 'anet-vehicleid', 'anet-veriwild']

def test_recipe_names():
    assert list(RECIPES) == NAMES

@pytest.mark.parametrize('name', NAMES)
def test_recipe_holds_the_papers_values(name):
    r, want = get_recipe(name), paper_table(name)
    args = r.args
    for k, (v, sec) in want.items():
        assert k in args, f'{name}: {k} ({sec}) is not set'
        assert args[k] == v, f'{name}: {k} = {args[k]!r}, the paper ({sec}) says {v!r}'
        assert r.settings[k].paper, f'{name}: {k} is the paper\'s ({sec}) but marked as the code\'s choice'
    claimed = {k for k, s in r.settings.items() if s.paper}
    assert claimed <= set(want), f'{name}: marked as the paper\'s but not in the paper table: {claimed - set(want)}'
    # what the papers give without a number: the augmentations exist, the batch is P x K
    assert args['flip_p'] > 0 and args['erase_p'] > 0
    if name.startswith('anet'): assert args['zoom_p'] > 0 and args['max_zoom'] > 1
    assert all(s.source.strip() for s in r.settings.values())

@pytest.mark.parametrize('name', NAMES)
def test_every_value_is_tagged(name):
    "Every value says whose it is: the paper's, the field's practice or the library's, with a source"
    from fastreid_vehicle.recipes import ORIGINS, Setting
    assert set(ORIGINS) == {'paper', 'practice', 'library'}
    r = get_recipe(name)
    for k, s in r.settings.items():
        assert isinstance(s, Setting) and s.origin in ORIGINS and s.source.strip(), f'{name}: {k} is not tagged'
    # the optimiser's constants and the precision are in every recipe, not left to defaults
    assert {'opt_betas', 'opt_eps', 'amp', 'wd'} <= set(r.settings)
    assert r.args['opt_betas'] == (0.9, 0.999) and r.args['opt_eps'] == 1e-8
    if name.startswith('mfgnet'):
        for k, v in _MFG_INFERRED.items():
            assert r.args[k] == v and r.settings[k].origin == 'library', f'{name}: {k} is an inference, tagged {r.settings[k].origin}'
        assert r.settings['P'].origin == 'library' and r.args['P'] * r.args['K'] == _MFG_DATA[name][1]
    else:
        assert r.args['P'] * r.args['K'] == 512 and r.settings['P'].paper

@pytest.mark.parametrize('name', NAMES)
def test_pinned_weights_are_timm_names(name):
    "The backbone names the ImageNet weights: a timm pretrained tag, or a model the library registers with its weights' URL"
    import timm
    from fastreid_vehicle.backbones import IBN_A_URLS
    b = get_recipe(name).args['backbone']
    assert timm.is_model(b), b
    if '.' in b: assert b in timm.list_pretrained(b.split('.')[0] + '.*'), f'{b} is not a timm pretrained tag'
    else: assert b in IBN_A_URLS, f'{b}: no tag, so timm would pick its default weights'
    assert b != 'resnet50', "plain 'resnet50' loads timm's resnet50.a1_in1k"
    if name.startswith('mfgnet'): assert b == 'resnet50.tv_in1k'

def test_recipe_table_and_overrides():
    t = recipe_table()
    assert len(t) == sum(len(r.settings) for r in RECIPES.values())
    assert set(t.query('paper')['setting']) >= {'lr', 'size', 'eval_distance'}
    with pytest.raises(ValueError, match='mfgnet-veri776'): get_recipe('bot-market')
    s = build_settings('anet-veri776', K=3)
    assert (s.fit.lr, s.data.K, s.data.P) == (6e-4, 3, 128)
    assert (s.sources['lr'], s.sources['K'], s.sources.get('seed', 'default')) == ('recipe', 'argument', 'default')
    with pytest.raises(ValueError, match='epochs: expected int'): build_settings('anet-veri776', epochs='many')

@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    from fastreid_vehicle.synthetic import synthesize_veri
    return synthesize_veri(tmp_path_factory.mktemp('synth')/'veri', 'tiny', seed=0, n_workers=1)

@pytest.mark.parametrize('name', NAMES)
def test_tiny_run_of_every_recipe(name, tiny_root, tmp_path):
    "Each recipe trains and evaluates through `train()`: only data, size, epochs, batch and backbone overridden"
    from fastreid_vehicle.pipeline import train
    anet = name.startswith('anet')
    tiny = dict(dataset='veri776', root=tiny_root, out=tmp_path/'run', backbone='resnet18', pretrained=False,
                size=(32, 32) if anet else (48, 16), P=4, K=4, bs_valid=32, epochs=1, progress=False,
                stage2_epochs=1 if anet else 0, milestones=(1,) if anet else ())
    res = train(recipe=name, **tiny)
    args = recipe_args(name)
    assert res['recipe'] == name and res['method'] == args['method'] and res['settings']['lr'] == args['lr']
    assert res['eval_distance'] == args['eval_distance']
    assert res['eval_feature'] == ('l2norm(j)' if anet else 'cat(feat, 4 local)')
    assert res['num_queries'] > 0 and 0 <= res['mAP'] <= 1
    saved = json.loads((tmp_path/'run'/'metrics.json').read_text())
    run = json.loads((tmp_path/'run'/'run.json').read_text())
    assert run['batch'] == dict(P=4, K=4, batch=16, world_size=1, P_per_process=4, batch_per_process=16)
    assert (run['optimizer']['name'], run['optimizer']['sqr_mom'], run['optimizer']['eps']) == ('amsgrad', 0.999, 1e-8)
    assert run['precision']['amp'] == 'auto' and run['precision']['used'] in ('fp32', 'bf16', 'fp16')
    assert saved['recipe'] == name and saved['settings']['camera_aware'] is False and saved['settings']['center_cameras'] is False


NBS = Path(__file__).resolve().parent.parent/'nbs'
PAGES = {'mfgnet': NBS/'21_fidelity_mfgnet.ipynb', 'anet': NBS/'22_fidelity_anet.ipynb'}

def _outputs(nb, needle):
    "The saved text/markdown output of the code cell whose source contains `needle`"
    cells = [c for c in nb['cells'] if c['cell_type'] == 'code' and needle in ''.join(c['source'])]
    assert len(cells) == 1, needle
    md = [o['data']['text/markdown'] for o in cells[0]['outputs'] if 'text/markdown' in o.get('data', {})]
    return ''.join(''.join(m) if isinstance(m, list) else m for m in md)

@pytest.mark.parametrize('method', list(PAGES))
def test_fidelity_page_agrees_with_the_recipes(method):
    "The page shows the recipes module's tables as they are now (saved outputs), and names only real switches"
    import inspect, re
    from fastreid_vehicle.recipes import recipe_markdown
    from fastreid_vehicle.models import get_method
    from fastreid_vehicle.data import ReidDataLoaders
    from fastreid_vehicle.pipeline import train
    nb = json.loads(PAGES[method].read_text())
    for origin in ('paper', 'code'):
        assert _outputs(nb, f"recipe_markdown('{method}', '{origin}')") == recipe_markdown(method, origin), \
            f'{PAGES[method].name} is stale: re-run it'
    t = recipe_table(method)
    shown = recipe_markdown(method, 'paper') + recipe_markdown(method, 'code')
    assert all(f'`{k}`' in shown for k in t['setting']), 'a setting of the recipe is missing from the page'
    # the switch column of "What the paper specifies" names arguments that exist
    md = next(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown' and 'What the paper specifies' in ''.join(c['source']))
    rows = [l for l in md.splitlines() if l.startswith('| ') and not l.startswith('| section')]
    names = {m for l in rows for m in re.findall(r'`(\w+)=', l.rsplit('|', 2)[-2])}
    model_cls, loss_cls = get_method(method).model, get_method(method).loss
    known = set()
    for f in (model_cls.__init__, loss_cls.__init__, inspect.unwrap(train), ReidDataLoaders.from_df.__func__):
        known |= set(inspect.signature(f).parameters)
    from fastreid_vehicle.metrics import evaluate_reid
    known |= set(inspect.signature(evaluate_reid).parameters)
    from fastreid_vehicle.config import config_fields
    known |= set(config_fields())   # the run's settings: train's keywords
    assert names and names <= known, f'switches on the page that no function takes: {names - known}'
