"Tests of fastreid_vehicle.evaluation: protocols, flip TTA, AQE, k-reciprocal re-ranking, verification curve."
import tracemalloc
import numpy as np, pandas as pd, pytest, torch
from torch import nn
from hypothesis import given, settings, strategies as st, HealthCheck

from fastreid_vehicle.evaluation import (query_expansion, aqe, re_ranking, re_ranking_dist, tar_at_far, roc_auc,
    verification_curve, evaluate_features, EvalResult, evaluate_protocol_tables)
from fastreid_vehicle.protocols import dataset_key, protocol_tables, protocol_union
from fastreid_vehicle.inference import FlipTTA
from fastreid_vehicle.metrics import evaluate_reid, l2_normalize, pairwise_distance
from fastreid_vehicle.readers import vehicleid_gallery_mask

torch.set_num_threads(1)


def direct(qf, gf, qp, gp, qc, gc, distance='cosine', **kwargs):
    "The matrix form, as a reference for the one evaluation"
    return evaluate_reid(pairwise_distance(qf, gf, distance), qp, gp, qc, gc, **kwargs)


# ---------------------------------------------------------------- dense references written here, independently
def rerank_dense(sqd, nq, k1=20, k2=6, lam=0.3):
    "Zhong et al. 2017 k-reciprocal re-ranking, straight from the definition, on a full (N, N) squared-distance matrix"
    d = sqd / sqd.max(1, keepdims=True)
    n = len(d)
    rank = np.argsort(d, axis=1, kind='stable')
    def k_rec(i, k):
        return np.array([j for j in rank[i, :k + 1] if i in rank[j, :k + 1]], dtype=int)
    V = np.zeros((n, n))
    for i in range(n):
        r = k_rec(i, k1)
        expanded = set(r.tolist())
        for c in r:
            rc = k_rec(c, int(np.around(k1 / 2)))
            if len(set(rc.tolist()) & set(r.tolist())) > 2 / 3 * len(rc): expanded |= set(rc.tolist())
        ex = np.array(sorted(expanded))
        w = np.exp(-d[i, ex]); V[i, ex] = w / w.sum()
    if k2 != 1: V = np.stack([V[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.empty((nq, n - nq))
    for i in range(nq):
        for j in range(nq, n):
            jac[i, j - nq] = 1 - np.minimum(V[i], V[j]).sum() / np.maximum(V[i], V[j]).sum()
    return jac * (1 - lam) + d[:nq, nq:] * lam


def clustered(n, dim=8, n_ids=6, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, n_ids, n)
    return (rng.normal(size=(n_ids, dim))[ids] + noise * rng.normal(size=(n, dim))).astype(np.float32), ids


def sq_dists(f):
    f = f.astype(np.float64)
    return ((f[:, None] - f[None]) ** 2).sum(-1)


# ---------------------------------------------------------------- re-ranking
@pytest.mark.parametrize("n,nq,k1,k2,lam", [(60, 15, 8, 3, 0.3), (70, 20, 20, 6, 0.3), (40, 10, 5, 1, 0.0),
                                            (12, 4, 20, 6, 1.0), (50, 10, 3, 2, 0.5)])
def test_rerank_matches_dense_reference(n, nq, k1, k2, lam):
    f, _ = clustered(n, seed=n + k1)
    ref = rerank_dense(sq_dists(f), nq, k1, k2, lam)
    ours = re_ranking(f[:nq], f[nq:], k1=k1, k2=k2, lambda_value=lam)
    assert ours.shape == (nq, n - nq) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # tiny chunks and pair budgets exercise every chunk boundary
    small = re_ranking(f[:nq], f[nq:], k1=k1, k2=k2, lambda_value=lam, chunk_size=7, max_pairs=40)
    np.testing.assert_allclose(small, ref, atol=1e-5)


def test_rerank_cosine_and_distmat_entry():
    f, _ = clustered(50, seed=3)
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    ref = rerank_dense(sq_dists(fn), 12, 10, 4)
    np.testing.assert_allclose(re_ranking(torch.tensor(f[:12]), torch.tensor(f[12:]), k1=10, k2=4, distance='cosine'), ref, atol=1e-5)
    ed = np.sqrt(sq_dists(f))   # torchreid convention: Euclidean distances in, squared inside
    np.testing.assert_allclose(re_ranking_dist(ed[:12, 12:], ed[:12, :12], ed[12:, 12:], k1=10, k2=4, chunk_size=9),
                               rerank_dense(sq_dists(f), 12, 10, 4), atol=1e-5)


def test_rerank_improves_a_clustered_problem():
    f, ids = clustered(300, dim=16, n_ids=15, noise=0.9, seed=5)
    qf, gf, qp, gp = f[:60], f[60:], ids[:60], ids[60:]
    cams_q, cams_g = np.zeros(60, int), np.ones(240, int)
    base = direct(qf, gf, qp, gp, cams_q, cams_g, 'euclidean')
    rr = evaluate_reid(re_ranking(qf, gf, k1=10, k2=3), qp, gp, cams_q, cams_g)
    assert rr.mAP > base.mAP


def test_rerank_memory_is_bounded():
    "No (Q+G)^2 dense float64 matrix: the numpy peak stays far below N*N*8 bytes"
    f, _ = clustered(4000, dim=16, n_ids=200, seed=2)
    tracemalloc.start()
    out = re_ranking(f[:400], f[400:], k1=20, k2=6, chunk_size=256, max_pairs=1 << 18)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (400, 3600)
    assert peak < 4000 * 4000 * 8 / 4, peak     # numpy / scipy allocations; torch blocks are 256 x 4000 float32


def test_rerank_errors():
    f, _ = clustered(20)
    with pytest.raises(ValueError, match='dim'): re_ranking(f[:5], f[5:, :4])
    with pytest.raises(ValueError, match='lambda_value'): re_ranking(f[:5], f[5:], lambda_value=2)
    with pytest.raises(ValueError, match='distance'): re_ranking(f[:5], f[5:], distance='manhattan')
    with pytest.raises(ValueError, match='NaN'): re_ranking(np.full((2, 8), np.nan), f)


# ---------------------------------------------------------------- AQE, L2, flip TTA
def qe_brute(f, k, alpha):
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    out = []
    for i in range(len(f)):
        s = fn @ fn[i]
        nb = np.argsort(-s, kind='stable')[:k]
        out.append((f[nb] * (np.maximum(s[nb], 0) ** alpha)[:, None]).mean(0))
    return np.stack(out)


@pytest.mark.parametrize("k,alpha", [(1, 3.0), (3, 0.0), (5, 3.0), (40, 1.0)])
def test_query_expansion_brute_force(k, alpha):
    f, _ = clustered(30, seed=k)
    np.testing.assert_allclose(query_expansion(f, k=k, alpha=alpha, chunk_size=7), qe_brute(f, min(k, 30), alpha), atol=1e-5)


def test_aqe_pairs_and_times():
    f, _ = clustered(25, seed=1)
    q, g = aqe(f[:5], f[5:], k=4, alpha=3.0, times=2)
    twice = qe_brute(qe_brute(f, 4, 3.0), 4, 3.0)
    np.testing.assert_allclose(np.concatenate([q, g]), twice, atol=1e-5)
    qt, gt = aqe(torch.tensor(f[:5]), torch.tensor(f[5:]), k=1)
    assert isinstance(qt, torch.Tensor)
    np.testing.assert_allclose(qt.numpy(), f[:5], atol=1e-6)    # k=1: only itself, weight 1
    with pytest.raises(ValueError, match='dim'): aqe(f[:5], f[5:, :3])


def test_l2_normalize():
    x = np.array([[3., 4.], [0., 0.]], np.float32)
    np.testing.assert_allclose(l2_normalize(x), [[.6, .8], [0, 0]])
    assert isinstance(l2_normalize(torch.tensor(x)), torch.Tensor)


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 5 * 6, 8))


def _flip_preds(m, xs, **kwargs):
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from torch.utils.data import TensorDataset
    ds = TensorDataset(xs, torch.arange(len(xs)))
    dls = DataLoaders(DataLoader(ds, bs=4), DataLoader(ds, bs=4))
    learn = Learner(dls, m, loss_func=lambda p, y: p.sum() * 0, cbs=[FlipTTA(**kwargs)])
    return learn.get_preds(dl=dls.valid)[0]


def test_flip_tta_callback_in_get_preds():
    m = tiny_model()
    xs = torch.randn(10, 3, 5, 6)
    assert not torch.allclose(m(xs), m(xs.flip(-1)), atol=1e-4)     # the model itself is not flip invariant
    e = _flip_preds(m, xs)
    with torch.no_grad(): want = (m.eval()(xs) + m(xs.flip(-1))) / 2
    torch.testing.assert_close(e, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_flip_preds(m, xs.flip(-1)), e, rtol=1e-5, atol=1e-5)   # TTA makes it invariant
    sym = xs + xs.flip(-1)
    with torch.no_grad(): torch.testing.assert_close(_flip_preds(m, sym), m(sym), rtol=1e-5, atol=1e-5)
    en = _flip_preds(m, xs, l2_normalize=True)
    with torch.no_grad(): want = (l2_normalize(m(xs)) + l2_normalize(m(xs.flip(-1)))) / 2
    torch.testing.assert_close(en, want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- verification curve
def brute_tar(P, N, far):
    ts = np.append(np.unique(np.concatenate([P, N])), np.inf)
    return max((P >= t).mean() for t in ts if (N >= t).mean() <= far)


def brute_auc(P, N):
    return np.mean([(p > n) + 0.5 * (p == n) for p in P for n in N])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 6), min_size=1, max_size=15), st.lists(st.integers(0, 6), min_size=1, max_size=25),
       st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.29, 0.5, 1.0]))
def test_tar_at_far_and_auc_brute_force(pos, neg, far):
    "Integer scores: many ties"
    P, N = np.array(pos, float), np.array(neg, float)
    tars, thr = tar_at_far(P, N, [far])
    assert tars[0] == pytest.approx(brute_tar(P, N, far))
    assert (N >= thr[0]).mean() <= far and (P >= thr[0]).mean() == pytest.approx(tars[0])   # accept when score >= threshold
    assert roc_auc(P, N) == pytest.approx(brute_auc(P, N))


@pytest.mark.parametrize("distance", ['cosine', 'euclidean'])
def test_verification_curve_brute_force(distance):
    rng = np.random.default_rng(0)
    qp, gp = rng.integers(0, 6, 25), rng.integers(0, 6, 40)
    qc, gc = rng.integers(0, 3, 25), rng.integers(0, 3, 40)
    qf, gf = rng.normal(size=(25, 5)) + qp[:, None], rng.normal(size=(40, 5)) + gp[:, None]
    fars = [0.001, 0.01, 0.1, 0.5]
    res = verification_curve(qf, gf, qp, gp, qc, gc, distance=distance, fars=fars)
    if distance == 'cosine':
        S = (qf / np.linalg.norm(qf, axis=1, keepdims=True)) @ (gf / np.linalg.norm(gf, axis=1, keepdims=True)).T
    else: S = -np.sqrt(((qf[:, None] - gf[None]) ** 2).sum(-1))
    same = qp[:, None] == gp[None]
    P, N = S[same & (qc[:, None] != gc[None])], S[~same]
    assert (res.n_pos, res.n_neg, res.sampled) == (len(P), len(N), False)
    np.testing.assert_allclose(res.tars, [brute_tar(P, N, f) for f in fars], atol=1e-6)
    assert res.auc == pytest.approx(brute_auc(P, N), abs=1e-6)
    # from a distance matrix, and without junk removal
    D = -S
    r2 = verification_curve(q_pids=qp, g_pids=gp, q_camids=qc, g_camids=gc, distmat=D, fars=fars)
    np.testing.assert_allclose(r2.tars, res.tars, atol=1e-6)
    r3 = verification_curve(q_pids=qp, g_pids=gp, q_camids=qc, g_camids=gc, distmat=D, fars=fars, remove_junk=False)
    assert r3.n_pos == same.sum() and r3.auc == pytest.approx(brute_auc(S[same], N))
    assert set(res.as_dict()) == {'TAR@FAR=1e-03', 'TAR@FAR=1e-02', 'TAR@FAR=1e-01', 'TAR@FAR=5e-01', 'AUC'}


def test_verification_positives_are_same_id_pairs():
    "Perfectly separated ids: AUC 1 and TAR 1 (inverted labels would give 0)"
    pid = np.repeat(np.arange(5), 4)
    f = np.eye(5)[pid] + 0.01 * np.random.default_rng(0).normal(size=(20, 5))
    res = verification_curve(f[::2], f[1::2], pid[::2], pid[1::2], fars=[0.0, 0.01])
    assert res.auc == 1.0 and (res.tars == 1.0).all()


def test_verification_single_set_and_sampling():
    rng = np.random.default_rng(1)
    pid = rng.integers(0, 8, 60)
    f = rng.normal(size=(60, 6)) + 2 * np.eye(8, 6)[pid % 6]
    res = verification_curve(f, q_pids=pid, distance='euclidean', fars=[0.05, 0.2])
    S = -np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1))
    iu = np.triu_indices(60, 1)
    same = (pid[:, None] == pid[None])[iu]
    P, N = S[iu][same], S[iu][~same]
    np.testing.assert_allclose(res.tars, [brute_tar(P, N, 0.05), brute_tar(P, N, 0.2)], atol=1e-6)
    assert res.auc == pytest.approx(brute_auc(P, N))
    # more negatives than max_neg_pairs: a seeded sample (reproducible) and close to the exact answer
    s1 = verification_curve(f, q_pids=pid, distance='euclidean', fars=[0.2], max_neg_pairs=1000, seed=3)
    s2 = verification_curve(f, q_pids=pid, distance='euclidean', fars=[0.2], max_neg_pairs=1000, seed=3)
    assert s1.sampled and s1.n_neg < 1000 and s1.n_neg_total == len(N)
    np.testing.assert_array_equal(s1.tars, s2.tars)
    assert abs(s1.auc - res.auc) < 0.05


def test_verification_errors():
    with pytest.raises(ValueError, match='q_pids'): verification_curve(np.ones((2, 2)))
    with pytest.raises(ValueError, match='query and'):
        verification_curve(q_pids=[1, 2], g_pids=[1, 2, 3], distmat=np.zeros((2, 2)))


# ---------------------------------------------------------------- protocols
def toy(n_ids=8, per_id=6, n_cams=4, seed=0, dataset='VeRi-776', train_rows=0):
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_ids), per_id)
    cam = rng.integers(0, n_cams, len(pid))
    split = np.where(np.arange(len(pid)) % per_id == 0, 'query', 'gallery')
    df = pd.DataFrame(dict(path=[f'/x/{i}.jpg' for i in range(len(pid))], pid=pid, camid=cam, split=split))
    if train_rows:
        tr = pd.DataFrame(dict(path=[f'/t/{i}.jpg' for i in range(train_rows)], pid=100 + np.arange(train_rows),
                               camid=0, split='train'))
        df = pd.concat([tr, df], ignore_index=True)
    df.attrs['dataset'] = dataset
    feats = (rng.normal(size=(n_ids, 16))[pid] + 0.9 * rng.normal(size=(len(pid), 16))).astype(np.float32)
    return df, feats


def test_dataset_key():
    assert [dataset_key(n) for n in ['veri776', 'VeRi-776', 'VERI-Wild', 'veriwild', 'VehicleID', 'vric', 'custom']] == \
           ['veri776', 'veri776', 'veriwild', 'veriwild', 'vehicleid', 'vric', None]


def test_veri776_protocol_equals_direct_evaluation_and_alignment():
    df, f = toy(train_rows=5)
    test = df[df.split != 'train']
    q, g = (test.split == 'query').to_numpy(), (test.split == 'gallery').to_numpy()
    ref = direct(f[q], f[g], test.pid[q].to_numpy(), test.pid[g].to_numpy(), test.camid[q].to_numpy(),
                 test.camid[g].to_numpy())
    r = evaluate_features(df, f)                      # features of the non-train rows only
    assert isinstance(r, EvalResult) and r.settings['dataset'] == 'veri776' and len(r.draws) == 1
    assert r.mAP == pytest.approx(ref.mAP) and r.rank1 == pytest.approx(ref.rank1)
    np.testing.assert_array_equal(r.first_hit, ref.first_hit)
    assert r.num_valid == ref.num_valid and r.rank10 == pytest.approx(ref.rank10) and r.mINP == pytest.approx(ref.mINP)
    full = np.concatenate([np.zeros((5, 16), np.float32), f])   # one row per df row
    assert evaluate_features(df, full).mAP == pytest.approx(ref.mAP)
    assert 'mAP_std' not in r.as_dict() and list(r.table().index) == ['veri776']
    assert 'rank1=' in repr(r) and 'veri776' in repr(r)
    with pytest.raises(ValueError, match='one per row of items'): evaluate_features(df, f[:-1])
    # a custom dataset: the rows as configured, standard junk removal
    assert evaluate_features(df, f, dataset='market1501').mAP == pytest.approx(ref.mAP)
    with pytest.raises(TypeError, match='unknown evaluation setting'): evaluate_features(df, f, metric='cosine')
    with pytest.raises(ValueError, match='distance'): evaluate_features(df, f, distance='hamming')
    with pytest.raises(ValueError, match='protocol'): evaluate_features(df, f, protocol='standard')


def test_protocol_test_time_options_compose():
    df, f = toy(seed=4)
    q, g = (df.split == 'query').to_numpy(), (df.split == 'gallery').to_numpy()
    pid, cam = df.pid.to_numpy(), df.camid.to_numpy()
    fa = query_expansion(l2_normalize(f), k=3)
    dm = re_ranking(fa[q], fa[g], k1=5, k2=2, distance='cosine')
    want = evaluate_reid(dm, pid[q], pid[g], cam[q], cam[g])
    got = evaluate_features(df, f, dataset='veri776', aqe=dict(k=3), rerank=dict(k1=5, k2=2))
    assert got.mAP == pytest.approx(want.mAP) and got.mINP == pytest.approx(want.mINP)
    assert got.settings['rerank'] and got.settings['aqe'] and 'rerank' in repr(got)


def test_center_cameras_is_applied_and_named():
    from fastreid_vehicle.evaluation import center_by_camera
    df, f = toy(seed=6)
    q, g = (df.split == 'query').to_numpy(), (df.split == 'gallery').to_numpy()
    fc = center_by_camera(f, df.camid.to_numpy())     # the test set's own camera statistics
    want = direct(fc[q], fc[g], df.pid[q].to_numpy(), df.pid[g].to_numpy(), df.camid[q].to_numpy(), df.camid[g].to_numpy())
    got = evaluate_features(df, f, center_cameras=True)
    assert got.mAP == pytest.approx(want.mAP) and got.mAP != pytest.approx(evaluate_features(df, f).mAP)
    assert got.settings['center_cameras'] is True and 'center_cameras' in repr(got) and got.as_dict()['settings']['center_cameras']


def test_veriwild_same_camera_option():
    rng = np.random.default_rng(3)
    pid = np.repeat(np.arange(10), 4); cam = np.tile([0, 0, 1, 2], 10)
    split = np.tile(['query', 'gallery', 'gallery', 'gallery'], 10)
    df = pd.DataFrame(dict(path='', pid=pid, camid=cam, split=split)); df.attrs['dataset'] = 'veriwild'
    f = rng.normal(size=(40, 8)).astype(np.float32)
    f[1::4] = f[0::4] + 0.01 * rng.normal(size=(10, 8))   # same-camera twin of every query
    keep = evaluate_features(df, f, dataset='veriwild', remove_junk=False)
    drop = evaluate_features(df, f)                       # default: removed
    assert keep.rank1 == 1.0 and drop.rank1 < 1.0 and drop.mAP < keep.mAP
    assert drop.settings['remove_junk'] is True and drop.settings['dataset'] == 'veriwild'
    # removal gives exactly the junk-removed evaluation, keeping gives the plain one
    q, g = split == 'query', split == 'gallery'
    assert drop.mAP == pytest.approx(direct(f[q], f[g], pid[q], pid[g], cam[q], cam[g]).mAP)
    assert keep.mAP == pytest.approx(direct(f[q], f[g], pid[q], pid[g], cam[q], cam[g], remove_junk=False).mAP)


def test_vehicleid_draws_reproducible_and_different():
    df, f = toy(n_ids=30, per_id=5, seed=2, dataset='VehicleID', train_rows=3)
    r = evaluate_features(df, f, n_draws=10, seed=0)
    assert len(r.draws) == 10 and r.settings['dataset'] == 'vehicleid' and r.settings['n_draws'] == 10
    maps = np.array([d.mAP for d in r.draws])
    np.testing.assert_array_equal(maps, [d.mAP for d in evaluate_features(df, f, dataset='vehicleid', seed=0).draws])
    assert len(np.unique(maps)) > 1                                                         # draws differ
    assert not np.allclose([d.mAP for d in evaluate_features(df, f, seed=1).draws], maps)  # another seed differs
    d = r.as_dict()
    assert d['mAP'] == pytest.approx(maps.mean()) and d['mAP_std'] == pytest.approx(maps.std(ddof=1)) and d['draws'] == 10
    np.testing.assert_allclose(maps, [x.mINP for x in r.draws])          # one gallery image per id: AP = INP = 1/rank
    # draw 3 is exactly: one gallery image per id from the readers' mask, all other test images are queries
    test = df[df.split != 'train']; pid = test.pid.to_numpy()
    gm = vehicleid_gallery_mask(pid, trial=3, seed=0)
    assert len(np.unique(pid[gm])) == gm.sum() == 30
    ref = direct(f[~gm], f[gm], pid[~gm], pid[gm], np.zeros((~gm).sum()), np.ones(gm.sum()))
    assert maps[3] == pytest.approx(ref.mAP) and r.draws[3].rank(5) == pytest.approx(ref.rank5)
    assert r.draws[3].num_valid == (~gm).sum()
    assert len(evaluate_features(df, f, protocol='plain').draws) == 1     # the rows as given


def test_vric_single_shot():
    rng = np.random.default_rng(5)
    pid = np.repeat(np.arange(12), 2)
    df = pd.DataFrame(dict(path='', pid=pid, camid=np.zeros(24, int), split=np.tile(['query', 'gallery'], 12)))
    df.attrs['dataset'] = 'VRIC'
    f = (rng.normal(size=(12, 8))[pid] + 0.8 * rng.normal(size=(24, 8))).astype(np.float32)
    r = evaluate_features(df, f)
    # same camera everywhere: with junk removal every probe would lose its only match; single shot keeps them
    assert r.settings['dataset'] == 'vric' and r.num_valid == 12 and r.settings['remove_junk'] is False
    assert r.mAP == pytest.approx(np.mean(1 / (r.first_hit + 1))) and r.mINP == pytest.approx(r.mAP)
    df2 = df.copy(); df2.loc[3, 'split'] = 'query'   # id 1 now has two probes
    with pytest.warns(UserWarning, match='single shot'): evaluate_features(df2, f, dataset='vric')


# ---------------------------------------------------------------- the standard test tables, on tiny release trees
def _path_feats(union, seed=0, dim=8):
    "Features keyed by path: the id's centre plus noise"
    rng = np.random.default_rng(seed)
    centres = {p: rng.normal(size=dim) for p in union['pid'].unique()}
    return {p: centres[pid] + 0.5 * rng.normal(size=dim) for p, pid in zip(union['path'], union['pid'])}


def test_vehicleid_three_sizes_ten_draws(tmp_path):
    from fastreid_vehicle.example_trees import make_vehicleid_tree
    tree = make_vehicleid_tree(tmp_path/'vid', test_sizes={800: 4, 1600: 6, 2400: 8})
    tables = protocol_tables('VehicleID', tree['root'])
    assert list(tables) == ['800', '1600', '2400']
    union = protocol_union(tables)
    feats = _path_feats(union)
    r = evaluate_protocol_tables(tables, feats)
    t = r.table()
    assert list(t.index) == ['800', '1600', '2400'] and (t['draws'] == 10).all()
    assert {'mAP_std', 'rank1_std'} <= set(t.columns)
    for name, items in tables.items():      # each row: the mean and std of 10 draws over that size's test images
        sub = items[items.split.isin(['query', 'gallery'])]
        one = evaluate_features(sub, np.stack([feats[p] for p in sub.path]), dataset='vehicleid')
        maps = [d.mAP for d in one.draws]
        assert t.loc[name, 'mAP'] == pytest.approx(np.mean(maps)) and t.loc[name, 'mAP_std'] == pytest.approx(np.std(maps, ddof=1))
    assert r.mAP == pytest.approx(t.loc['800', 'mAP'])   # the headline is the first size
    # the same from (items, features) in any order
    shuffled = union.sample(frac=1, random_state=0)
    r2 = evaluate_protocol_tables(tables, (shuffled, np.stack([feats[p] for p in shuffled.path])))
    pd.testing.assert_frame_equal(r2.table(), t)
    assert r.as_dict()['tables'][2]['test'] == '2400'


def test_veriwild_three_sizes_reported(tmp_path):
    from fastreid_vehicle.example_trees import make_veriwild_tree
    tree = make_veriwild_tree(tmp_path/'vw')
    tables = protocol_tables('VeRi-Wild', tree['root'])
    union = protocol_union(tables)
    r = evaluate_protocol_tables(tables, _path_feats(union, seed=1))
    t = r.table()
    assert list(t.index) == ['3000', '5000', '10000'] and (t['draws'] == 1).all()
    assert t['num_valid'].tolist() == [2, 3, 4]          # one query per test id in each tiny list
    assert r.settings['dataset'] == 'veriwild' and r.settings['remove_junk'] is True
    assert list(protocol_tables('veriwild', tree['root'], test_size=5000)) == ['5000']


def test_vric_keeps_same_camera_gallery_images(tmp_path):
    from fastreid_vehicle.example_trees import make_vric_tree
    tree = make_vric_tree(tmp_path/'vric', n_test_ids=4, n_cams=1)    # one camera: every match is same-camera
    tables = protocol_tables('VRIC', tree['root'])
    assert list(tables) == ['vric']
    items = tables['vric']
    test = items[items.split.isin(['query', 'gallery'])]
    feats = _path_feats(test, seed=2)
    r = evaluate_protocol_tables(tables, feats)
    assert r.num_valid == 4 and r.settings['remove_junk'] is False       # no same-camera junk removal
    f = np.stack([feats[p] for p in test.path])
    with pytest.raises(ValueError, match='no valid query'): evaluate_features(test, f, protocol='plain')   # with removal: none left


# ---------------------------------------------------------------- checks moved from nbs/04_evaluation.ipynb
from fastreid_vehicle.evaluation import center_by_camera, baseline_results


def test_center_by_camera_small():
    f = torch.tensor([[1., 0.], [0., 1.], [3., 4.], [4., 3.]])
    out = center_by_camera(f, [1, 1, 2, 2])
    torch.testing.assert_close(out[:2].sum(0), torch.zeros(2)); torch.testing.assert_close(out[2:].sum(0), torch.zeros(2))
    torch.testing.assert_close(out[0], torch.tensor([.5, -.5]))
    np.testing.assert_allclose(center_by_camera(f.numpy(), np.array([5, 5, 5, 5]), l2_normalize=False), (f - f.mean(0)).numpy(),
                               atol=1e-6)
    assert isinstance(center_by_camera(f.numpy(), [1, 1, 2, 2]), np.ndarray)
    with pytest.raises(ValueError, match='camids'): center_by_camera(f, [1, 2])


def test_tar_at_far_worked_example():
    p, n = np.array([.9, .8, .8, .3]), np.array([.85, .8, .2, .1, 0.])
    tars, thr = tar_at_far(p, n, [0., .2, .4, 1.])
    np.testing.assert_allclose(tars, [.25, .25, 1., 1.]); np.testing.assert_allclose(thr, [.9, .85, .3, 0.])
    assert roc_auc(p, n) == pytest.approx((5 + 3.5 + 3.5 + 3) / 20)


def test_baseline_results_lookup_finds_same_labels():
    b = pd.DataFrame(dict(split=['query', 'gallery', 'gallery', 'gallery'], pid=[1, 1, 2, 3], camid=[0, 1, 1, 1],
                          color=['red', 'red', 'blue', 'red'], type=['sedan', 'sedan', 'sedan', 'suv']))
    br = baseline_results(b)
    assert br['lookup'].rank1 == 1. and br['lookup'].settings['distance'] == 'euclidean'


def test_evaluate_features_notebook_examples():
    df, feats = toy()
    q, g = (df.split == 'query').to_numpy(), (df.split == 'gallery').to_numpy()
    r = evaluate_features(df, feats)
    ref = direct(feats[q], feats[g], df.pid[q].to_numpy(), df.pid[g].to_numpy(), df.camid[q].to_numpy(), df.camid[g].to_numpy())
    assert r.mAP == pytest.approx(ref.mAP) and r.rank1 == pytest.approx(ref.rank1)
    dft = pd.concat([df.iloc[:1].assign(split='train'), df], ignore_index=True); dft.attrs = df.attrs
    assert evaluate_features(dft, feats).mAP == pytest.approx(r.mAP)   # features of non-train rows only
    # several tables from features computed once
    t2 = df[df.pid < 5].copy(); t2.attrs = df.attrs
    rt = evaluate_protocol_tables({'all': df, 'small': t2}, (df, feats))
    assert list(rt.table().index) == ['all', 'small'] and rt.mAP == pytest.approx(r.mAP)
    assert rt.table().loc['small', 'mAP'] == pytest.approx(evaluate_features(t2, feats[df.pid < 5]).mAP)
    with pytest.raises(ValueError, match='no features'): evaluate_protocol_tables({'a': df}, (df.iloc[:3], feats[:3]))
    # VehicleID: draws reproducible, one match per query (AP = INP), std over draws in the table
    dfv, fv = toy(n_ids=30, per_id=5, seed=2, dataset='VehicleID')
    rv = evaluate_features(dfv, fv, n_draws=10, seed=0)
    maps = [d.mAP for d in rv.draws]
    assert len(rv.draws) == 10 and len(set(maps)) > 1
    np.testing.assert_allclose(maps, [d.mAP for d in evaluate_features(dfv, fv, dataset='vehicleid', seed=0).draws])
    np.testing.assert_allclose(maps, [d.mINP for d in rv.draws])
    assert rv.table().loc['vehicleid', 'mAP_std'] == pytest.approx(np.std(maps, ddof=1))


# ---------------------------------------------------------------- checks moved from nbs/04a_protocols.ipynb
import warnings
from fastreid_vehicle.protocols import protocol_draws


def test_protocol_draws_and_tables_worked_examples(tmp_path):
    assert [dataset_key(n) for n in ['VeRi-776', 'veri_wild_small', 'VehicleID', 'VRIC', 'market', None]] == \
           ['veri776', 'veriwild', 'vehicleid', 'vric', None, None]
    it = pd.DataFrame(dict(pid=[1, 1, 2, 2, 2, 3], camid=[0, 1, 0, 1, 1, 0], split=['query', 'gallery'] * 3))
    assert len(protocol_draws(it, 'VehicleID')) == 10
    d0 = protocol_draws(it, 'vehicleid')[0]
    assert d0['gallery'].sum() == 3 and (d0['query'] | d0['gallery']).all() and not d0['remove_junk']
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        assert protocol_draws(it, 'vric')[0]['remove_junk'] is False
    assert protocol_draws(it, 'veri776')[0]['remove_junk'] is True
    assert len(protocol_draws(it, 'vehicleid', protocol='plain')) == 1
    with pytest.raises(ValueError, match='protocol must be'): protocol_draws(it, protocol='standard')
    from fastreid_vehicle.example_trees import make_vehicleid_tree
    root = make_vehicleid_tree(tmp_path/'vid')['root']
    tabs = protocol_tables('VehicleID', root)
    assert list(tabs) == ['800', '1600', '2400']
    assert len(protocol_union(tabs)) == tabs['2400']['split'].isin(['query', 'gallery']).sum()   # the lists are nested
    assert list(protocol_tables('vehicleid', root, test_size=1600)) == ['1600']
