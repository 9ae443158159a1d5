"Ranked-retrieval figure and loss-component plot."
import numpy as np, pytest
from fastreid_vehicle.plots import ranked_lists, plot_ranked_retrieval, plot_cmc

def test_ranked_lists_removes_junk_and_marks_hits(tiny_veri_df):
    df = tiny_veri_df
    q, g = df[df.split == 'query'].reset_index(drop=True), df[df.split == 'gallery'].reset_index(drop=True)
    d = np.random.default_rng(0).random((len(q), len(g)))
    idx, hit, ok = ranked_lists(d, q, g, k=5)
    for i in range(len(q)):
        for c in range(5):
            gi = g.iloc[idx[i, c]]
            if ok[i, c]:
                assert not (gi.pid == q.pid[i] and gi.camid == q.camid[i]), 'junk must be removed'
                assert hit[i, c] == (gi.pid == q.pid[i])
    srt = np.sort(np.where((q.pid.values[:, None] == g.pid.values[None]) & (q.camid.values[:, None] == g.camid.values[None]), np.inf, d), 1)[:, :5]
    assert np.allclose(np.take_along_axis(d, idx, 1)[ok], srt[ok])
    with pytest.raises(ValueError, match='shape'): ranked_lists(d[:, :3], q, g)
    fig = plot_ranked_retrieval(d, q, g, n_queries=2, k=4)
    assert len(fig.axes) == 2 * 5


def test_plot_cmc_of_eval_and_reid_results():
    "CMC curves from the first hits of `EvalResult`s (what `evaluate_features` returns) and of a `ReidResult`"
    import matplotlib; matplotlib.use('Agg')
    import pandas as pd
    from fastreid_vehicle.evaluation import evaluate_features
    rng = np.random.default_rng(0)
    pid = np.repeat(np.arange(30), 4); split = np.tile(['query', 'gallery', 'gallery', 'gallery'], 30)
    items = pd.DataFrame(dict(pid=pid, camid=np.tile([0, 1, 2, 3], 30), split=split))
    f = rng.normal(size=(30, 16))[pid] + rng.normal(size=(120, 16))
    rs = {'cosine': evaluate_features(items, f), 'euclidean': evaluate_features(items, f, distance='euclidean')}
    ax = plot_cmc({**rs, 'plain': rs['cosine'].result}, max_rank=15)
    assert len(ax.lines) == 3 and len(ax.lines[0].get_xdata()) == 15
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [rs['cosine'].rank(k) * 100 for k in range(1, 16)])
    np.testing.assert_allclose(ax.lines[2].get_ydata(), ax.lines[0].get_ydata())
    assert ax.get_legend() is not None and len(plot_cmc(rs['cosine']).lines) == 1


def test_plot_cmc_of_stand_in_results_and_loss_components():
    "Moved from nbs/10_plots.ipynb: any object with `first_hit` works; loss components from a Recorder's columns"
    import matplotlib; matplotlib.use('Agg')
    from types import SimpleNamespace
    from fastreid_vehicle.plots import plot_loss_components
    rs = {f'model {i}': SimpleNamespace(first_hit=np.random.default_rng(i).integers(0, 30, 200) * (i + 1)) for i in range(3)}
    ax = plot_cmc(rs, max_rank=20)
    assert len(ax.lines) == 3 and ax.lines[0].get_ydata()[0] == pytest.approx((rs['model 0'].first_hit == 0).mean() * 100)
    rec = SimpleNamespace(metric_names=['epoch', 'train_loss', 'valid_loss', 'rank1', 'id', 'tri', 'time'],
                          values=[[3., 2.5, .2, 2.8, .4], [2., 2.2, .4, 2.0, .3]], metrics=[SimpleNamespace(name='rank1')])
    ax = plot_loss_components(rec)
    assert [l.get_label() for l in ax.lines] == ['id', 'tri']
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [.4, .3])
