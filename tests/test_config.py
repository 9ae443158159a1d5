"One definition per setting: the configs of `fastreid_vehicle.config` feed `train`, the command line, `run.json` and the docs."
import dataclasses, json
from pathlib import Path
import pandas as pd, pytest
from fastreid_vehicle.config import (DataConfig, FitConfig, EvalConfig, ModelConfig, RunConfig, build_settings,
                                     config_fields, coerce, parse_size, settings_table, settings_from_args)
from fastreid_vehicle.cli import _parser, main
from fastreid_vehicle.pipeline import train, MAIN_JOB

def _help(cmd='train') -> str:
    return _parser()._subparsers._group_actions[0].choices[cmd].format_help()

def test_every_setting_once_with_help_and_a_flag():
    fs = config_fields()
    assert len(fs) == sum(len(dataclasses.fields(c)) for c in (DataConfig, ModelConfig, FitConfig, EvalConfig, RunConfig))
    h = _help()
    for name, (_, f) in fs.items():
        assert f.metadata['help'].strip(), name
        if f.metadata['flag']: assert '--' + name.replace('_', '-') in h, name
    t = settings_table()
    assert list(t['setting']) == list(fs) and t['help'].str.len().gt(0).all()

def test_precedence_argument_over_recipe_over_default():
    s = build_settings('mfgnet-veri776', lr=0.01, data=DataConfig(P=3))
    assert (s.fit.lr, s.sources['lr']) == (0.01, 'argument')               # a keyword beats the recipe
    assert (s.data.P, s.sources['P']) == (3, 'argument')                   # a config passed whole beats it too
    assert (s.fit.opt, s.sources['opt']) == ('amsgrad', 'recipe')          # the recipe beats the default
    assert (s.fit.seed, s.sources.get('seed', 'default')) == (0, 'default')
    assert s.model.settings['n_stripes'] == 4 and s.sources['n_stripes'] == 'recipe'   # a method's own setting
    assert build_settings(n_stripes=6).model.settings == {'soft_margin': True, 'n_stripes': 6}   # beside the main job's

def test_values_are_checked_and_named():
    assert parse_size('384,128') == (384, 128) and parse_size(256) == (256, 256) and parse_size('64x32') == (64, 32)
    with pytest.raises(ValueError, match='epochs: expected int'): build_settings(epochs='many')
    with pytest.raises(ValueError, match='opt must be one of'): build_settings(opt='adamw')
    with pytest.raises(ValueError, match='size must be'): build_settings(size=(1, 2, 3))
    with pytest.raises(ValueError, match='lr: expected float'): coerce('lr', None)
    assert coerce('milestones', '') == () and coerce('milestones', '10,20') == (10, 20) and coerce('root', Path('/x')) == '/x'
    with pytest.raises(SystemExit): _parser().parse_args(['train', '--epochs', 'x'])

def test_flags_given_are_the_only_overrides():
    ns = _parser().parse_args(['train', '--recipe', 'anet-veri776', '--no-camera-aware', '--size', '32'])
    s = settings_from_args(ns, ns.recipe)
    assert s.data.size == (32, 32) and s.sources['size'] == 'argument'
    assert s.fit.lr == 6e-4 and s.sources['lr'] == 'recipe'      # no --lr typed: the recipe's value stays
    assert MAIN_JOB == build_settings().flat() and 'out' not in MAIN_JOB

def test_help_states_each_default_once_and_readably():
    "A default the help line states is not appended again; None and () read 'none'; None (the default) is not listed as a choice"
    h = ' '.join(_help().split())
    helps = {a.dest: a.help for a in _parser()._subparsers._group_actions[0].choices['train']._actions}
    for name in ('root', 'preload', 'threads', 'distance', 'opt_betas', 'opt_eps', 'weights', 'epochs'):
        assert helps[name].count('default:') == 1, (name, helps[name])
    assert '(default: None)' not in h and '(default: )' not in h
    assert "rate by 10, e.g. '40,70' (default: none)" in h
    assert '--distance {cosine,euclidean}' in h and '{None,' not in h

def test_flags_parse_to_typed_settings():
    a = _parser().parse_args(['train', '--resume', '--image-check', 'drop', '--epochs', '3'])
    assert (a.resume, a.image_check, a.epochs) == (True, 'drop', 3)

def test_help_does_not_import_pandas():
    "`fastreid-vehicle --help` loads only the parser's modules (pandas costs about 0.4 s)"
    import subprocess, sys
    code = 'import sys, fastreid_vehicle.cli; print("pandas" in sys.modules)'
    assert subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip() == 'False'

def test_a_default_changed_in_one_place_reaches_help_train_and_run_json(tmp_path, monkeypatch):
    "Change FitConfig's `epochs` and DataConfig's `K` defaults in the config only: --help, train and run.json follow"
    fields = {f.name: f for f in dataclasses.fields(FitConfig)} | {f.name: f for f in dataclasses.fields(DataConfig)}
    monkeypatch.setattr(fields['epochs'], 'default', 1)
    monkeypatch.setattr(fields['K'], 'default', 3)
    h = ' '.join(_help().split())
    assert 'training epochs (stage 1) (default: 1)' in h and 'images per identity in a training batch (default: 3)' in h
    res = train(preset='tiny', root=tmp_path/'veri', out=tmp_path/'run', backbone='resnet18', pretrained=False,
                size=32, P=4, progress=False, threads=1)
    hist = pd.read_csv(tmp_path/'run'/'history.csv')
    assert len(hist) == 1 and res['settings']['epochs'] == 1 and res['settings']['K'] == 3
    rec = json.loads((tmp_path/'run'/'run.json').read_text())
    assert rec['config']['epochs'] == 1 and rec['config']['K'] == 3
    assert rec['sources']['epochs'] == 'default' and rec['sources']['P'] == 'argument'

def test_P_is_the_global_batch_split_over_processes():
    "`P` x `K` is the batch of one optimiser step over all processes; each process takes P / world_size identities"
    from fastreid_vehicle.config import split_batch, describe_batch
    s = split_batch(128, 4, 8)   # ANet: 512 images per step on 8 GPUs
    assert s == dict(P=128, K=4, batch=512, world_size=8, P_per_process=16, batch_per_process=64)
    assert split_batch(12, 4)['batch_per_process'] == 48
    assert '8 processes x 64 (16 x 4)' in describe_batch(s)
    with pytest.raises(ValueError) as e: split_batch(12, 4, 8)   # MFG-Net's 48 on 8 processes
    msg = str(e.value)
    assert 'P=12' in msg and '48 = 12 x 4' in msg and '8 processes' in msg   # what was asked
    assert 'P=8 (32 images) or P=16 (64 images)' in msg and '1, 2, 3, 4, 6, 12 processes' in msg   # what would work
    with pytest.raises(ValueError, match='world_size'): split_batch(8, 4, 0)

def test_optimizer_constants_resolved_and_checked():
    from fastreid_vehicle.pipeline import optimizer_constants
    assert optimizer_constants(FitConfig(opt='adam')) == dict(name='adam', mom=0.9, sqr_mom=0.99, eps=1e-5, decouple_wd=True, wd=5e-4)
    c = optimizer_constants(build_settings('anet-veri776').fit)
    assert (c['name'], c['mom'], c['sqr_mom'], c['eps']) == ('amsgrad', 0.9, 0.999, 1e-8)
    assert optimizer_constants(FitConfig(opt='sgd', opt_betas=(0.9,)))['mom'] == 0.9
    with pytest.raises(ValueError, match='sgd takes 1 value'): optimizer_constants(FitConfig(opt='sgd', opt_betas=(0.9, 0.99)))
    assert coerce('opt_betas', '0.9,0.999') == (0.9, 0.999) and coerce('opt_eps', 'none') is None

def test_main_job_is_the_synthetic_small_benchmark():
    "Moved from nbs/24_pipeline.ipynb"
    assert MAIN_JOB['preset'] == 'small' and MAIN_JOB['dataset'] == 'synthetic' and 'out' not in MAIN_JOB


def test_main_job_settings_do_not_leak_into_recipes():
    "The main job's method settings (soft-margin triplet) are the default; a recipe starts from its method's own."
    assert build_settings().model.settings == {'soft_margin': True}
    assert build_settings(n_stripes=6, method='mfgnet').model.settings == {'soft_margin': True, 'n_stripes': 6}
    for name in ('mfgnet-veri776', 'anet-veri776'):
        s = build_settings(name)
        assert 'soft_margin' not in s.model.settings and s.model.settings['margin'] == 0.3
        assert build_settings(name, soft_margin=True).model.settings['soft_margin'] is True   # an argument still wins
