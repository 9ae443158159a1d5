"ReidInterpretation on the tiny synthetic benchmark: numbers equal the evaluators', tables consistent, figures drawn."
import numpy as np, pytest, torch
import matplotlib.pyplot as plt
from fastreid_vehicle.learner import reid_learner
from fastreid_vehicle.inference import embed
from fastreid_vehicle.evaluation import evaluate_learner
from fastreid_vehicle.evaluation import aqe, re_ranking
from fastreid_vehicle.metrics import evaluate_reid
from fastreid_vehicle.interpret import ReidInterpretation, activation_maps, evaluation_spec

@pytest.fixture(scope='module')
def interp_bot(tiny_veri_df):
    from fastreid_vehicle.data import ReidDataLoaders
    torch.manual_seed(0)
    dls = ReidDataLoaders.from_df(tiny_veri_df, size=(64, 64), P=4, K=4, bs_valid=32, seed=0)
    learn = reid_learner(dls, 'bot', backbone='resnet18', pretrained=False)
    with learn.no_bar(): return ReidInterpretation.from_learner(learn), learn

def test_numbers_equal_evaluate_learner(interp_bot):
    it, learn = interp_bot
    with learn.no_bar(): ref = evaluate_learner(learn, flip_tta=True)
    assert it.result.mAP == pytest.approx(ref.mAP, abs=1e-6) and np.array_equal(it.result.first_hit, ref.first_hit)
    assert it.dist.shape == (len(it.q_items), len(it.g_items)) and it.distance == evaluation_spec(learn)['distance']
    q = it.queries
    assert len(q) == len(it.q_items) and q.loc[q.valid, 'AP'].mean() == pytest.approx(it.result.mAP)

def test_worst_queries_breakdowns_and_confusions(interp_bot):
    it, _ = interp_bot
    worst = it.top_losses()
    assert list(worst['first_hit']) == sorted(worst['first_hit'], reverse=True) and len(worst) == it.result.num_valid
    assert it.top_losses(3)['first_hit'].iloc[0] == it.result.first_hit.max() and len(it.top_losses(3)) == 3
    for by in ('camid', 'color', 'type'):
        bd = it.breakdown(by)
        assert bd['queries'].sum() == it.result.num_valid
        assert (bd['rank1'] * bd['queries']).sum() / bd['queries'].sum() == pytest.approx(it.result.rank1)
        assert (bd['mAP'] * bd['queries']).sum() / bd['queries'].sum() == pytest.approx(it.result.mAP)
    with pytest.raises(ValueError, match="no column 'weather'"): it.breakdown('weather')
    mc = it.most_confused()
    assert mc['count'].sum() == round((1 - it.result.rank1) * it.result.num_valid)
    assert (mc['pid'] != mc['mistaken_for']).all() and list(mc['count']) == sorted(mc['count'], reverse=True)
    idx, hit, ok = it.top_k(3)
    assert hit[:, 0].mean() == pytest.approx(it.result.rank1) and idx.shape == (len(it.q_items), 3)

def test_figures(interp_bot, tmp_path):
    it, _ = interp_bot
    figs = [it.plot_ranked_retrieval(n_queries=2, k=4), it.plot_cmc().figure, it.plot_top_losses(2, n_matches=3),
            it.plot_breakdown('color').figure, it.plot_confusion().figure, it.plot_activation_maps(2)]
    for i, f in enumerate(figs):
        f.savefig(tmp_path/f'{i}.png'); assert (tmp_path/f'{i}.png').stat().st_size > 1000
    assert len(figs[2].axes) == 2 * 4 and 'first' in figs[2].axes[0].get_title()
    assert len(figs[5].axes) == 2 * 2   # image + backbone map
    plt.close('all')
    with pytest.raises(ValueError, match='split'): it.plot_activation_maps(1, split='train')

def test_anet_maps_have_g_reid(tiny_dls):
    m = reid_learner(tiny_dls, 'anet', backbone='resnet18', pretrained=False).model.train()
    maps = activation_maps(m, torch.randn(3, 3, 64, 64))
    assert set(maps) == {'backbone', 'G_reid'} and m.training   # mode restored
    for v in maps.values(): assert v.shape[0] == 3 and float(v.min()) == 0 and float(v.amax()) == pytest.approx(1)

def test_rerank_aqe_and_bad_features(interp_bot):
    it, learn = interp_bot
    dl = learn.dls.valid
    r = ReidInterpretation.from_features(learn, dl, it.feats, rerank=True, aqe=dict(k=3))
    q = torch.from_numpy((dl.items['split'] == 'query').to_numpy().copy())
    qf, gf = aqe(it.feats[q], it.feats[~q], k=3)
    np.testing.assert_allclose(r.dist, re_ranking(qf, gf, distance='cosine'), atol=1e-6)
    with pytest.raises(ValueError, match='feats has'): ReidInterpretation.from_features(learn, dl, it.feats[:-1])
