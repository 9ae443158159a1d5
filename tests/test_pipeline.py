"`train` and `evaluate_run` on tiny trees in each official layout: the dataset's standard protocol, the same table from both."
import json
from pathlib import Path
import pytest
from fastreid_vehicle.example_trees import make_vehicleid_tree, make_veriwild_tree, make_vric_tree
from fastreid_vehicle.pipeline import train, evaluate_run

TINY = dict(backbone='resnet18', pretrained=False, size=32, P=2, K=2, epochs=1, progress=False, threads=1, bs_valid=16)

def _run(tmp_path, dataset, make, **kw):
    root = make(tmp_path/dataset, **kw)['root']
    res = train(dataset=dataset, root=root, out=tmp_path/'run', **TINY)
    ev = evaluate_run(tmp_path/'run', dataset=dataset, root=root, out=tmp_path/'ev', progress=False, n_figure_queries=2)
    assert [r['test'] for r in ev['table']] == [r['test'] for r in res['table']]
    for a, b in zip(res['table'], ev['table']):   # the same model, the same features: the same numbers
        assert a == pytest.approx(b, abs=1e-6), (a, b)
    assert json.loads((tmp_path/'run'/'metrics.json').read_text())['table'] == res['table']
    return res, ev

def test_vehicleid_three_sizes_ten_draws(tmp_path):
    res, ev = _run(tmp_path, 'vehicleid', make_vehicleid_tree, n_train_ids=4, test_sizes={800: 4, 1600: 6, 2400: 8})
    t = {r['test']: r for r in res['table']}
    assert list(t) == ['800', '1600', '2400']
    for r in t.values(): assert r['draws'] == 10 and 'mAP_std' in r and 'rank1_std' in r
    assert res['evaluation']['dataset'] == 'vehicleid' and res['evaluation']['n_draws'] == 10
    assert res['mAP'] == pytest.approx(t['800']['mAP'])   # the headline is the 800 test set's mean over draws

def test_veriwild_three_sizes(tmp_path):
    res, ev = _run(tmp_path, 'veriwild', make_veriwild_tree)
    assert [r['test'] for r in res['table']] == ['3000', '5000', '10000']
    assert res['evaluation']['remove_junk'] is True

def test_vric_without_junk_removal(tmp_path):
    res, ev = _run(tmp_path, 'vric', make_vric_tree)
    assert res['evaluation']['dataset'] == 'vric' and res['evaluation']['remove_junk'] is False
    assert ev['evaluation']['remove_junk'] is False

def test_eval_uses_the_runs_recorded_settings(tmp_path):
    "A run scored with camera centring is evaluated with it again by default, and the output says so"
    root = make_vric_tree(tmp_path/'vric')['root']
    res = train(dataset='vric', root=root, out=tmp_path/'run', center_cameras=True, **TINY)
    assert 'camera_centred' in res and res['evaluation']['center_cameras'] is False   # the headline: standard protocol
    ev = evaluate_run(tmp_path/'run', dataset='vric', root=root, out=tmp_path/'ev', progress=False, n_figure_queries=2)
    assert ev['eval']['center_cameras'] is True and ev['camera_centred']['mAP'] == pytest.approx(res['camera_centred']['mAP'])
    ev2 = evaluate_run(tmp_path/'run', dataset='vric', root=root, out=tmp_path/'ev2', progress=False,
                       n_figure_queries=2, center_cameras=False)
    assert 'camera_centred' not in ev2 and ev2['mAP'] == pytest.approx(res['mAP'])

def test_four_routes_give_the_same_numbers(tmp_path):
    "One saved run: the Recorder metric, `evaluate_learner`, `ReidInterpretation`, `train`'s table and `fastreid-vehicle eval` agree"
    from fastreid_vehicle.cli import main
    from fastreid_vehicle.data import ReidDataLoaders
    from fastreid_vehicle.evaluation import evaluate_learner
    from fastreid_vehicle.inference import load_weights
    from fastreid_vehicle.interpret import ReidInterpretation
    from fastreid_vehicle.learner import reid_learner
    from fastreid_vehicle.pipeline import load_reid_data
    root = tmp_path/'veri'
    res = train(preset='tiny', root=root, out=tmp_path/'run', **{**TINY, 'P': 4, 'K': 4})
    df = load_reid_data('synthetic', root, 'tiny')
    dls = ReidDataLoaders.from_df(df, size=32, P=4, K=4, bs_valid=16, seed=0)
    learn = reid_learner(dls, 'bot', backbone='resnet18', pretrained=False)
    load_weights(learn.model, tmp_path/'run'/'model.safetensors')
    with learn.no_bar():
        v = learn.validate()
        vals = dict(zip(learn.recorder.metric_names[2:], v))   # valid_loss, rank1, mAP, mINP, ... columns
        direct = evaluate_learner(learn)
        interp = ReidInterpretation.from_learner(learn, flip_tta=False)
    main(['eval', str(tmp_path/'run'), '--preset', 'tiny', '--root', str(root), '--out', str(tmp_path/'ev'), '--no-progress'])
    ev = json.loads((tmp_path/'ev'/'metrics.json').read_text())
    for k in ('rank1', 'mAP', 'mINP'):
        want = getattr(direct, k)
        got = dict(recorder=vals[k], interpretation=getattr(interp.result, k), train=res[k], eval=ev[k])
        assert all(v == pytest.approx(want, abs=1e-6) for v in got.values()), (k, want, got)
