"Tests of fastreid_vehicle.metrics: exact metrics against independent references, streaming, fastai integration"
import math
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, HealthCheck, strategies as st
from hypothesis.extra.numpy import arrays

import fastreid_vehicle.metrics as M
from fastreid_vehicle.metrics import (ReidResult, evaluate_reid, pairwise_distance, reid_metrics, ReidMetrics,
                                      _evaluate_streamed as evaluate_streamed)


# ---------------------------------------------------------------- references
def brute_force(dist, qp, gp, qc, gc, max_rank=50, remove_junk=True):
    "Plain per-query loop over the ranked gallery, following the definitions; ties by gallery index (pure Python sort)"
    dist = np.asarray(dist, dtype=np.float64)
    Q, G = dist.shape
    L = min(max_rank, G)
    cmcs, aps, inps, firsts, valid = [], [], [], [], []
    for i in range(Q):
        ranked = sorted(range(G), key=lambda g: (dist[i, g], g))
        pos, hits = 0, []
        for g in ranked:
            if remove_junk and gp[g] == qp[i] and gc[g] == qc[i]: continue   # junk: not ranked at all
            if gp[g] == qp[i]: hits.append(pos)
            pos += 1
        valid.append(bool(hits))
        if not hits: continue
        aps.append(sum((j + 1) / (p + 1) for j, p in enumerate(hits)) / len(hits))
        inps.append(len(hits) / (hits[-1] + 1))
        firsts.append(hits[0])
        cmcs.append([1.0 if hits[0] < k else 0.0 for k in range(1, L + 1)])
    if not aps: return None
    return dict(cmc=np.mean(cmcs, 0), all_AP=np.array(aps), all_INP=np.array(inps), first_hit=np.array(firsts),
                valid=np.array(valid), mAP=np.mean(aps), mINP=np.mean(inps))


def fastreid_semantics(dist, qp, gp, qc, gc, max_rank=50):
    """What fast-reid's `eval_market1501` computes (written from its description): numpy default argsort per row,
    junk removed, hit vector cumsum clipped at 1 and cut at `max_rank` (itself clipped to the gallery size),
    AP = sum(cumsum / position * hit) / n_hits, INP = cumsum at last hit / (last hit + 1).
    Well defined only when every valid query keeps >= max_rank gallery items; returns None otherwise."""
    Q, G = dist.shape
    if G < max_rank: max_rank = G
    order = np.argsort(dist, axis=1)
    all_cmc, all_AP, all_INP = [], [], []
    for i in range(Q):
        o = order[i]
        keep = ~((gp[o] == qp[i]) & (gc[o] == qc[i]))
        raw = (gp[o] == qp[i]).astype(np.int32)[keep]
        if not raw.any(): continue
        cum = raw.cumsum()
        last = np.flatnonzero(raw).max()
        all_INP.append(cum[last] / (last + 1.0))
        c = cum.copy(); c[c > 1] = 1
        if len(c) < max_rank: return None
        all_cmc.append(c[:max_rank])
        all_AP.append((cum / np.arange(1.0, len(raw) + 1) * raw).sum() / raw.sum())
    if not all_cmc: return None
    return np.asarray(all_cmc, np.float32).sum(0) / len(all_cmc), np.array(all_AP), np.array(all_INP)


def check_equal(res, ref):
    np.testing.assert_allclose(res.cmc, ref['cmc'], atol=1e-12)
    np.testing.assert_allclose(res.all_AP, ref['all_AP'], atol=1e-12)
    np.testing.assert_allclose(res.all_INP, ref['all_INP'], atol=1e-12)
    np.testing.assert_array_equal(res.first_hit, ref['first_hit'])
    np.testing.assert_array_equal(res.valid, ref['valid'])
    assert abs(res.mAP - ref['mAP']) < 1e-12 and abs(res.mINP - ref['mINP']) < 1e-12
    assert res.num_valid == ref['valid'].sum() and res.num_skipped == (~ref['valid']).sum()


# ---------------------------------------------------------------- random inputs
@st.composite
def reid_inputs(draw, ties=True, max_q=10, max_g=40):
    Q, G = draw(st.integers(1, max_q)), draw(st.integers(1, max_g))
    n_ids, n_cams = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    ids, cams = st.integers(0, n_ids - 1), st.integers(0, n_cams - 1)
    qp, gp = draw(arrays(np.int64, Q, elements=ids)), draw(arrays(np.int64, G, elements=ids))
    qc, gc = draw(arrays(np.int64, Q, elements=cams)), draw(arrays(np.int64, G, elements=cams))
    if ties:   # a coarse grid: many ties, and many values one binning step apart
        dist = draw(arrays(np.float32, (Q, G), elements=st.integers(0, 60).map(lambda x: x / 12)))
    else:    # tie-free: a random permutation of distinct values per row
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        dist = np.stack([rng.permutation(G) for _ in range(Q)]).astype(np.float64) / max(G, 1)
    max_rank = draw(st.integers(1, 60))
    remove_junk = draw(st.booleans())
    return dist, qp, gp, qc, gc, max_rank, remove_junk


@pytest.mark.parametrize('max_bins', [1, 3, 2048])   # one bin: every item between the first and last match compared exactly
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(inp=reid_inputs(ties=True), chunk_size=st.integers(1, 7))
def test_evaluate_reid_matches_brute_force(inp, chunk_size, max_bins, monkeypatch):
    monkeypatch.setattr(M, '_MAX_BINS', max_bins)
    dist, qp, gp, qc, gc, max_rank, remove_junk = inp
    ref = brute_force(dist, qp, gp, qc, gc, max_rank, remove_junk)
    if ref is None:
        with pytest.raises(ValueError, match='no valid query'):
            evaluate_reid(dist, qp, gp, qc, gc, max_rank=max_rank, remove_junk=remove_junk)
        return
    res = evaluate_reid(dist, qp, gp, qc, gc, max_rank=max_rank, remove_junk=remove_junk, chunk_size=chunk_size,
                        n_workers=2)
    check_equal(res, ref)
    assert len(res.cmc) == min(max_rank, dist.shape[1])


@settings(max_examples=200, deadline=None)
@given(reid_inputs(ties=False))
def test_evaluate_reid_matches_fastreid_semantics(inp):
    dist, qp, gp, qc, gc, max_rank, _ = inp
    fr = fastreid_semantics(dist, qp, gp, qc, gc, max_rank)
    if fr is None: return
    cmc, all_AP, all_INP = fr
    res = evaluate_reid(dist, qp, gp, qc, gc, max_rank=max_rank)
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-6)
    np.testing.assert_allclose(res.all_AP, all_AP, atol=1e-12)
    np.testing.assert_allclose(res.all_INP, all_INP, atol=1e-12)
    assert abs(res.mAP - np.mean(all_AP)) < 1e-12 and abs(res.mINP - np.mean(all_INP)) < 1e-12


@pytest.mark.parametrize('max_bins', [1, 2048])
def test_larger_random_against_brute_force(max_bins, monkeypatch):
    monkeypatch.setattr(M, '_MAX_BINS', max_bins)
    rng = np.random.default_rng(1)
    Q, G = 40, 3000
    qp, gp = rng.integers(0, 30, Q), rng.integers(0, 30, G)
    qc, gc = rng.integers(0, 5, Q), rng.integers(0, 5, G)
    dist = rng.random((Q, G)).astype(np.float32)
    dist[qp[:, None] == gp[None]] -= 0.2
    dist[:, ::7] = np.round(dist[:, ::7], 2)          # some ties too
    check_equal(evaluate_reid(dist, qp, gp, qc, gc, chunk_size=16), brute_force(dist, qp, gp, qc, gc))


# ---------------------------------------------------------------- edge cases
def test_skipped_queries_and_all_junk():
    # query 0: id 5 not in gallery; query 1: its only same-id images share its camera (all junk); query 2: valid
    dist = np.array([[.1, .2, .3, .4], [.4, .3, .2, .1], [.3, .1, .2, .4]])
    res = evaluate_reid(dist, [5, 1, 2], [1, 1, 2, 3], [0, 0, 0], [0, 0, 1, 1])
    assert (res.num_valid, res.num_skipped) == (1, 2)
    np.testing.assert_array_equal(res.valid, [False, False, True])
    # query 2 ranks g1, g2, g0, g3; g1 (id 1) is no junk for id 2 -> its match g2 is second
    assert res.first_hit.tolist() == [1] and res.all_AP.tolist() == [0.5] and res.mINP == 0.5
    # without junk removal, query 1 becomes valid
    res2 = evaluate_reid(dist, [5, 1, 2], [1, 1, 2, 3], [0, 0, 0], [0, 0, 1, 1], remove_junk=False)
    assert (res2.num_valid, res2.num_skipped) == (2, 1)


def test_gallery_smaller_than_max_rank_after_junk_removal():
    # 5 gallery items, max_rank 5; the query's two junk items leave 3 ranked items
    dist = np.array([[.5, .1, .2, .3, .4]])
    res = evaluate_reid(dist, [1], [1, 1, 1, 2, 1], [0], [1, 0, 0, 1, 2], max_rank=5)
    # junk-free ranking: g3 (id 2), g4 (id 1), g0 (id 1) -> hits at positions 1 and 2
    np.testing.assert_allclose(res.cmc, [0, 1, 1, 1, 1])
    assert res.all_AP[0] == pytest.approx((1 / 2 + 2 / 3) / 2) and res.all_INP[0] == pytest.approx(2 / 3)
    assert res.rank(50) == 1.0


def test_single_element_gallery_and_max_rank_clip():
    res = evaluate_reid(np.array([[0.3], [0.7]]), [1, 2], [1], [0, 0], [1])
    assert len(res.cmc) == 1 and res.cmc[0] == 1.0 and res.mAP == 1.0 and res.mINP == 1.0 and res.num_skipped == 1
    assert res.rank5 == 1.0


def test_all_ties_break_by_gallery_index():
    dist = np.zeros((1, 6))
    res = evaluate_reid(dist, [1], [2, 1, 2, 1, 2, 2], [0], [1, 1, 1, 1, 1, 1])
    assert res.first_hit.tolist() == [1] and res.all_AP[0] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert res.all_INP[0] == pytest.approx(2 / 4)


def test_infinite_distances_and_nan():
    dist = np.array([[np.inf, 0.2, -np.inf, np.inf, 0.1], [0.3, 0.2, 0.5, 0.4, 0.1]])
    res = evaluate_reid(dist, [1, 1], [1, 2, 2, 1, 1], [0, 0], [1, 1, 1, 1, 1])
    ref = brute_force(dist, np.array([1, 1]), np.array([1, 2, 2, 1, 1]), np.array([0, 0]), np.array([1, 1, 1, 1, 1]))
    check_equal(res, ref)
    dist = np.array([[np.inf, 0.2, -np.inf, np.inf, 0.1]])
    res = evaluate_reid(dist, [1], [1, 2, 2, 1, 1], [0], [1, 1, 1, 1, 1])
    ref = brute_force(dist, np.array([1]), np.array([1, 2, 2, 1, 1]), np.array([0]), np.array([1, 1, 1, 1, 1]))
    check_equal(res, ref)
    with pytest.raises(ValueError, match='NaN'):
        evaluate_reid(np.array([[np.nan, 1.]]), [1], [1, 1], [0], [1, 1])


def test_string_ids_cameras_and_tensor_input():
    dist = torch.tensor([[0.2, 0.1, 0.3]])
    res = evaluate_reid(dist, ['a'], ['a', 'b', 'a'], ['c1'], ['c2', 'c1', 'c1'])
    # 'a'@c1 junk is g2; ranking g1 (b), g0 (a): hit at position 1
    assert res.first_hit.tolist() == [1] and res.mAP == 0.5


def test_bad_inputs():
    with pytest.raises(ValueError, match='expected 3'): evaluate_reid(np.zeros((1, 3)), [1], [1, 1], [0], [0, 0, 0])
    with pytest.raises(ValueError, match='2-d'): evaluate_reid(np.zeros(3), [1], [1, 1, 1], [0], [0, 0, 0])
    with pytest.raises(ValueError, match='max_rank'): evaluate_reid(np.zeros((1, 1)), [1], [1], [0], [1], max_rank=0)


def test_chunking_workers_and_threads_invariance():
    rng = np.random.default_rng(3)
    dist = rng.random((50, 500))
    qp, gp, qc, gc = rng.integers(0, 20, 50), rng.integers(0, 20, 500), rng.integers(0, 3, 50), rng.integers(0, 3, 500)
    nt = torch.get_num_threads()
    rs = [evaluate_reid(dist, qp, gp, qc, gc, chunk_size=c, n_workers=w) for c, w in [(1, 1), (7, 2), (50, 1), (None, 3)]]
    for r in rs[1:]:
        np.testing.assert_array_equal(r.cmc, rs[0].cmc); np.testing.assert_array_equal(r.all_AP, rs[0].all_AP)
    assert torch.get_num_threads() == nt
    # float64 and float32 inputs of the same (exactly representable) values agree
    d32 = (np.round(dist * 1000) / 1024).astype(np.float32)
    a, b = evaluate_reid(d32, qp, gp, qc, gc), evaluate_reid(d32.astype(np.float64), qp, gp, qc, gc)
    np.testing.assert_array_equal(a.all_AP, b.all_AP)


# ---------------------------------------------------------------- features
def toy_features(Q=120, G=900, n_ids=50, n_cams=5, D=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_ids, D))
    qp, gp = rng.integers(0, n_ids, Q), rng.integers(0, n_ids, G)
    qf = (centers[qp] + rng.normal(size=(Q, D))).astype(np.float32)
    gf = (centers[gp] + rng.normal(size=(G, D))).astype(np.float32)
    return qf, gf, qp, gp, rng.integers(0, n_cams, Q), rng.integers(0, n_cams, G)


@pytest.mark.parametrize('distance', ['cosine', 'euclidean'])
def test_streamed_evaluation_equals_full_distmat(distance):
    qf, gf, qp, gp, qc, gc = toy_features()
    a = evaluate_streamed(qf, gf, qp, gp, qc, gc, distance=distance, chunk_size=13)
    b = evaluate_reid(pairwise_distance(qf, gf, distance), qp, gp, qc, gc)
    c = brute_force(pairwise_distance(qf, gf, distance).numpy(), qp, gp, qc, gc)
    np.testing.assert_allclose(a.cmc, b.cmc, atol=1e-12); np.testing.assert_allclose(a.all_AP, b.all_AP, atol=1e-12)
    np.testing.assert_allclose(a.all_INP, b.all_INP, atol=1e-12)
    check_equal(b, c)
    d = evaluate_streamed(torch.from_numpy(qf), torch.from_numpy(gf), qp, gp, qc, gc, distance=distance, n_workers=1)
    assert d.mAP == pytest.approx(a.mAP, abs=1e-12)
    e = evaluate_streamed(qf, gf, qp, gp, qc, gc, distance=distance, chunk_size=7, block_size=50)   # blocks of chunks
    np.testing.assert_allclose(e.all_AP, a.all_AP, atol=1e-12); np.testing.assert_array_equal(e.first_hit, a.first_hit)


def test_pairwise_distance_values():
    q, g = torch.randn(5, 7), torch.randn(9, 7)
    torch.testing.assert_close(pairwise_distance(q, g, 'euclidean'), torch.cdist(q, g), atol=1e-4, rtol=1e-4)
    cos = torch.nn.functional.cosine_similarity(q[:, None], g[None], dim=2)
    torch.testing.assert_close(pairwise_distance(q, g), 1 - cos, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='distance'): pairwise_distance(q, g, 'l1')
    with pytest.raises(ValueError, match='same width'): pairwise_distance(q, torch.randn(3, 6))


# ---------------------------------------------------------------- result object
def test_result_summary():
    qf, gf, qp, gp, qc, gc = toy_features()
    r = evaluate_streamed(qf, gf, qp, gp, qc, gc, max_rank=3)
    d = r.as_dict()
    assert list(d) == ['rank1', 'rank5', 'rank10', 'mAP', 'mINP', 'num_valid', 'num_skipped']
    assert len(r.cmc) == 3 and r.rank(3) == r.cmc[-1] and r.rank10 >= r.rank5 >= r.rank1 == r.cmc[0]
    assert 'rank1=' in repr(r) and 'mINP=' in repr(r) and 'valid' in repr(r)
    assert 0 < r.mINP <= r.mAP <= 1


# ---------------------------------------------------------------- fastai integration
@pytest.fixture(scope='module')
def tiny_learner_factory(tmp_path_factory):
    "A DataLoaders from a DataFrame (path, pid, camid, split) of tiny images, and a factory of tiny embedding learners"
    from PIL import Image
    from fastai.vision.all import (DataBlock, ImageBlock, RegressionBlock, ColReader, IndexSplitter, Learner, nn,
                                   ProgressCallback)
    tmp = tmp_path_factory.mktemp('tiny_reid')
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (6, 3))
    rows = []
    for split, n in [('train', 24), ('query', 6), ('gallery', 18)]:
        for k in range(n):
            pid, camid = k % 6, int(rng.integers(0, 3))
            img = (colours[pid] + rng.normal(0, 40, (12, 12, 3))).clip(0, 255).astype(np.uint8)
            p = tmp / f'{split}_{k}.png'
            Image.fromarray(img).save(p)
            rows.append(dict(path=str(p), pid=pid, camid=camid, split=split))
    df = pd.DataFrame(rows)
    dblock = DataBlock(blocks=(ImageBlock, RegressionBlock), get_x=ColReader('path'), get_y=ColReader('pid'),
                       splitter=IndexSplitter(np.flatnonzero(df['split'] != 'train')))
    dls = dblock.dataloaders(df, bs=8, num_workers=0)

    class TinyEmb(nn.Module):
        "Logits in train mode, an 8-d embedding in eval mode"
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 8))
            self.head = nn.Linear(8, 6)
        def forward(self, x):
            f = self.body(x)
            return self.head(f) if self.training else f

    def loss(pred, y):   # cross-entropy on logits; validation embeddings: a dummy loss
        if pred.shape[1] == 6: return torch.nn.functional.cross_entropy(pred, y.long().view(-1))
        return pred.pow(2).mean()

    def make(**kwargs):
        torch.manual_seed(0)
        learn = Learner(dls, TinyEmb(), loss_func=loss, path=tmp, **kwargs)
        learn.remove_cb(ProgressCallback)   # no progress bars in test logs
        return learn
    return df, dls, make


def _split_eval(learn, preds, **kwargs):
    items = learn.dls.valid.items
    q, g = np.array(items['split'] == 'query'), np.array(items['split'] == 'gallery')
    return evaluate_streamed(preds[torch.from_numpy(q)], preds[torch.from_numpy(g)], items['pid'].values[q],
                             items['pid'].values[g], items['camid'].values[q], items['camid'].values[g], **kwargs)


def _mean_norm(pred, *yb):
    "A plain fastai function metric to sit beside `ReidMetrics`"
    return pred.norm(dim=1).mean()


@pytest.mark.parametrize('where', ['metrics', 'metrics_mixed', 'metrics_unpacked', 'cbs', 'cbs_list'])
def test_fastai_recorder_columns_equal_evaluate_features(tiny_learner_factory, where):
    "`ReidMetrics` where a fastai user puts it: `metrics=ReidMetrics()`, unpacked in a list among other metrics, or `cbs=ReidMetrics()`"
    df, dls, make = tiny_learner_factory
    assert isinstance(dls.valid.items, pd.DataFrame) and list(dls.valid.items['split'].unique()) == ['query', 'gallery']
    rm = ReidMetrics(ranks=(1, 5))
    learn = make(**{'metrics': dict(metrics=rm), 'metrics_list': dict(metrics=[rm]),
                    'metrics_mixed': dict(metrics=[*rm, _mean_norm]), 'metrics_unpacked': dict(metrics=[*rm]),
                    'cbs': dict(cbs=rm), 'cbs_list': dict(cbs=[rm])}[where])
    learn.fit(1, 1e-2)
    learn.fit(1, 1e-2)   # a second fit: the callback does not add its columns twice
    mets = list(learn.metrics)
    extra = ['_mean_norm'] if where == 'metrics_mixed' else []
    assert learn.recorder.metric_names == ['epoch', 'train_loss', 'valid_loss', 'rank1', 'rank5', 'mAP', 'mINP', *extra, 'time']
    if extra: assert learn.recorder.values[-1][6] > 0   # the other metric is fastai's `AvgMetric`, computed as usual
    acc = mets[0].acc
    assert acc.n_evals == 2                      # four columns, one evaluation per validation pass (two fits)
    rec = learn.recorder.values[-1]              # train_loss, valid_loss, then the metrics
    preds, _ = learn.get_preds()
    ref = _split_eval(learn, preds)
    np.testing.assert_allclose(rec[2:6], [ref.rank1, ref.rank5, ref.mAP, ref.mINP], atol=1e-9)
    assert all(isinstance(v, float) for v in rec[2:6])


def test_packed_reid_metrics_in_a_list_says_to_unpack(tiny_learner_factory):
    "Without patching fastai, a `ReidMetrics` left packed inside a metrics list cannot list its columns: a clear error"
    df, dls, make = tiny_learner_factory
    for packed in ([ReidMetrics()], [ReidMetrics(), _mean_norm]):
        learn = make(metrics=packed)
        with pytest.raises(TypeError, match=r'metrics=\[\*ReidMetrics\(\), other\]'): learn.fit(1, 1e-2)


def test_one_path_same_numbers_recorder_evaluate_learner_interpretation(tiny_learner_factory):
    "The same features give identical numbers through the Recorder columns, `evaluate_learner` and `ReidInterpretation`"
    from fastreid_vehicle.evaluation import evaluate_learner
    from fastreid_vehicle.interpret import ReidInterpretation
    from fastreid_vehicle.config import EvalConfig
    df, dls, make = tiny_learner_factory
    learn = make(metrics=ReidMetrics(ranks=(1, 5)))
    learn.fit(1, 1e-2)
    vals = learn.validate()[1:]
    res = evaluate_learner(learn, cfg=EvalConfig())
    interp = ReidInterpretation.from_learner(learn, cfg=EvalConfig())   # no flip TTA: the same features
    for r in (res, interp.result):
        assert [r.rank1, r.rank5, r.mAP, r.mINP] == vals               # identical, not merely close
    np.testing.assert_array_equal(res.first_hit, interp.result.first_hit)
    assert learn.metrics[0].acc.result.mAP == res.mAP


def test_importing_the_package_changes_no_fastai_learner_attribute():
    "`import fastreid_vehicle.all` leaves every attribute of fastai's `Learner` that existed before it the same object"
    import subprocess, sys, textwrap
    code = textwrap.dedent("""
        from fastai.learner import Learner
        before = dict(vars(Learner))
        import fastreid_vehicle.all
        changed = [k for k, v in before.items() if vars(Learner).get(k, None) is not v]
        print('CHANGED', changed)
        assert not changed, changed
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and 'CHANGED []' in out.stdout, out.stdout + out.stderr


def test_metrics_class_as_metric(tiny_learner_factory):
    "`metrics=ReidMetrics` (the class, as fastai accepts metric classes) gives the default columns"
    df, dls, make = tiny_learner_factory
    learn = make(metrics=ReidMetrics)
    learn.fit(1, 1e-2)
    assert learn.recorder.metric_names == ['epoch', 'train_loss', 'valid_loss', 'rank1', 'mAP', 'mINP', 'time']
    assert all(isinstance(v, float) for v in learn.recorder.values[-1][2:5])


def test_fastai_savemodel_csvlogger_validate_predict(tiny_learner_factory):
    from fastai.callback.tracker import SaveModelCallback
    from fastai.callback.progress import CSVLogger
    df, dls, make = tiny_learner_factory
    learn = make(metrics=reid_metrics(ranks=(1,), distance='euclidean'))
    learn.fit(2, 1e-2, cbs=[SaveModelCallback(monitor='mAP', fname='best'), CSVLogger(fname='hist.csv')])
    assert (learn.path / 'models' / 'best.pth').exists()
    log = pd.read_csv(learn.path / 'hist.csv')
    assert list(log.columns) == ['epoch', 'train_loss', 'valid_loss', 'rank1', 'mAP', 'mINP', 'time'] and len(log) == 2
    assert log['mAP'].between(0, 1).all()
    # validate() after loading the best model: its columns equal evaluate_features on get_preds
    vals = learn.validate()
    preds, _ = learn.get_preds()
    ref = _split_eval(learn, preds, distance='euclidean')
    np.testing.assert_allclose(vals[1:], [ref.rank1, ref.mAP, ref.mINP], atol=1e-9)
    assert vals[2] == pytest.approx(log['mAP'].max(), abs=1e-6)   # SaveModelCallback reloaded the best epoch
    # unlabelled data: get_preds on a test_dl and predict do not crash; the metrics are None there
    tdl = learn.dls.test_dl(df[df.split != 'train'])
    p, targs = learn.get_preds(dl=tdl)
    assert p.shape == (len(tdl.dataset), 8) and targs is None
    assert [m.value for m in learn.metrics] == [None, None, None]
    learn.predict(df.iloc[30])
    assert [m.value for m in learn.metrics] == [None, None, None]


def test_reid_metrics_without_columns_or_query():
    "Items without pid/camid/split, or without a query, give None (no crash)"
    from types import SimpleNamespace
    mets = reid_metrics()
    acc = mets[0].acc
    for items in [pd.DataFrame({'x': range(4)}), pd.DataFrame({'pid': [1, 1, 2, 2], 'camid': 0, 'split': 'gallery'}),
                  None]:
        for m in mets: m.reset()
        learn = SimpleNamespace(training=False, pred=torch.randn(4, 3), dl=SimpleNamespace(items=items),
                                to_detach=lambda t: t)
        for m in mets: m.accumulate(learn)
        assert [m.value for m in mets] == [None, None, None]
    with pytest.raises(ValueError, match='distance'): ReidMetrics(distance='hamming')


def test_recorder_metric_uses_the_models_distance(tiny_learner_factory):
    "distance=None (the default): the distance the model says it is evaluated with (`eval_spec`), else cosine"
    df, dls, make = tiny_learner_factory
    for dist in ('euclidean', 'cosine'):
        mets = reid_metrics()
        learn = make(metrics=mets)
        if dist == 'euclidean': learn.model.eval_spec = lambda: {'feature': 'f', 'distance': 'euclidean'}
        learn.fit(1, 1e-2)
        assert mets[0].acc.distance == dist
        preds, _ = learn.get_preds()
        ref = _split_eval(learn, preds, distance=dist)
        assert mets[1].name == "mAP"; np.testing.assert_allclose(mets[1].value, ref.mAP, atol=1e-9)
    assert M.model_eval_spec(torch.nn.Linear(2, 2)) == {'feature': 'output', 'distance': 'cosine'}
    with pytest.raises(ValueError, match='distance'): reid_metrics(distance='l1')

@pytest.mark.parametrize('regime', ['strong', 'weak'])
def test_strong_and_weak_matrices_against_brute_force(regime):
    "A strong model's matches near the top of the ranking, a weak model's spread through it: the same exact numbers"
    rng = np.random.default_rng(3)
    Q, G = 30, 2500
    qp, gp = rng.integers(0, 25, Q), rng.integers(0, 25, G)
    qc, gc = rng.integers(0, 6, Q), rng.integers(0, 6, G)
    dist = rng.random((Q, G)).astype(np.float32)
    same = qp[:, None] == gp[None]
    dist[same] = dist[same] * 0.001 if regime == 'strong' else dist[same] - 0.3
    res, ref = evaluate_reid(dist, qp, gp, qc, gc, chunk_size=8), brute_force(dist, qp, gp, qc, gc)
    check_equal(res, ref)
    assert (res.rank1 > 0.9) if regime == 'strong' else (res.mAP < 0.6)


# ---------------------------------------------------------------- checks moved from nbs/03_metrics.ipynb
from types import SimpleNamespace
from fastcore.foundation import L
from fastai.learner import AvgMetric, mk_metric
from fastreid_vehicle.metrics import split_query_gallery, model_eval_spec, l2_normalize


def test_worked_example_and_errors():
    dist = np.array([[0.2, 0.3, 0.4, 0.1, 0.5], [0.9, 0.8, 0.7, 0.6, 0.1], [0.1, 0.2, 0.3, 0.4, 0.5]])
    res = evaluate_reid(dist, q_pids=[1, 2, 9], g_pids=[1, 1, 1, 3, 2], q_camids=[0, 0, 0], g_camids=[1, 0, 2, 1, 1], max_rank=5)
    np.testing.assert_allclose(res.all_AP, [(1/2 + 2/3) / 2, 1.]); np.testing.assert_allclose(res.all_INP, [2/3, 1.])
    assert list(res.first_hit) == [1, 0] and list(res.cmc) == [0.5, 1, 1, 1, 1] and (res.num_valid, res.num_skipped) == (2, 1)
    assert res.mAP == pytest.approx(((1/2 + 2/3) / 2 + 1) / 2)
    res_all = evaluate_reid(dist, [1, 2, 9], [1, 1, 1, 3, 2], [0, 0, 0], [1, 0, 2, 1, 1], remove_junk=False)
    assert res_all.all_AP[0] == pytest.approx((1/2 + 2/3 + 3/4) / 3) and len(res_all.cmc) == 5
    with pytest.raises(Exception, match='no valid query'): evaluate_reid(np.zeros((2, 3)), [1, 2], [3, 3, 3], [0, 0], [0, 0, 0])
    with pytest.raises(Exception, match='NaN'): evaluate_reid(np.full((1, 2), np.nan), [1], [1, 2], [0], [1, 1])
    with pytest.raises(Exception, match='expected 3'): evaluate_reid(np.zeros((2, 3)), [1, 2], [3, 3], [0, 0], [0, 0, 0])


def test_distances_split_and_columns():
    q, g = torch.randn(4, 8), torch.randn(6, 8)
    torch.testing.assert_close(pairwise_distance(q, g, 'euclidean'), torch.cdist(q, g), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pairwise_distance(q, g), 1 - torch.nn.functional.cosine_similarity(q[:, None], g[None], dim=2),
                               atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(l2_normalize(np.array([[3., 4.], [0., 0.]])), [[.6, .8], [0., 0.]])
    with pytest.raises(Exception, match='distance must be'): pairwise_distance(q, g, 'manhattan')
    qm, gm = split_query_gallery(pd.DataFrame({'split': ['query', 'gallery', 'train', 'gallery']}))
    assert list(qm) == [True, False, False, False] and list(gm) == [False, True, False, True]
    with pytest.raises(Exception, match='need query and gallery rows'): split_query_gallery(pd.DataFrame({'split': ['gallery']}))
    assert [m.name for m in L(ReidMetrics)] == ['rank1', 'mAP', 'mINP']
    cols = L([*ReidMetrics(ranks=(1, 5)), lambda pred, *yb: pred.norm(dim=1).mean()]).map(mk_metric)
    assert [getattr(m, 'name', None) for m in cols[:4]] == ['rank1', 'rank5', 'mAP', 'mINP'] and isinstance(cols[4], AvgMetric)
    with pytest.raises(Exception, match=r'metrics=\[\*ReidMetrics\(\), other\]'): mk_metric(ReidMetrics()).name
    class Spec(torch.nn.Module):
        def eval_spec(self): return {'feature': 'x', 'distance': 'euclidean'}
    assert model_eval_spec(Spec())['distance'] == 'euclidean'
    assert model_eval_spec(torch.nn.Linear(2, 2)) == {'feature': 'output', 'distance': 'cosine'}


def test_metric_views_share_one_evaluation():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 16)); qp, gp = rng.integers(0, 20, 40), rng.integers(0, 20, 200)
    qf = (centers[qp] + rng.normal(size=(40, 16))).astype(np.float32); gf = (centers[gp] + rng.normal(size=(200, 16))).astype(np.float32)
    qc, gc = rng.integers(0, 4, 40), rng.integers(0, 4, 200)
    items = pd.DataFrame({'pid': np.r_[qp, gp], 'camid': np.r_[qc, gc], 'split': ['query'] * 40 + ['gallery'] * 200})
    emb = torch.from_numpy(np.r_[qf, gf])
    mets = list(ReidMetrics(ranks=(1, 5)))
    assert [m.name for m in mets] == ['rank1', 'rank5', 'mAP', 'mINP']
    dl = SimpleNamespace(items=items, shuffle=False)
    for m in mets: m.reset()
    for b in range(0, 240, 64):
        learn = SimpleNamespace(training=False, pred=emb[b:b+64], dl=dl, to_detach=lambda t: t.detach().cpu())
        for m in mets: m.accumulate(learn)
    vals = [m.value for m in mets]
    ref = M._evaluate_streamed(qf, gf, qp, gp, qc, gc)
    np.testing.assert_allclose(vals, [ref.rank1, ref.rank5, ref.mAP, ref.mINP], atol=1e-12)
    assert mets[0].acc.n_evals == 1
    for m in mets: m.reset()
    assert [m.value for m in mets] == [None] * 4
