"Ranked-retrieval figure and loss-component plot."
import numpy as np, pytest
from fastreid_vehicle.plots import ranked_lists, plot_ranked_retrieval

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
