"`train` and `evaluate_run` on tiny trees in each official layout: the dataset's standard protocol, the same table from both."
import json
from pathlib import Path
import pytest
from dataset_trees import make_vehicleid_tree, make_veriwild_tree, make_vric_tree
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
