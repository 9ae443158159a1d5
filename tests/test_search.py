"Tests of fastreid_vehicle.search.GalleryIndex: exact search, approximate recall, save/load, errors."
import json, os
import numpy as np, pandas as pd, pytest, faiss

from fastreid_vehicle.search import GalleryIndex, SearchResult

faiss.omp_set_num_threads(1)


def clustered(n, dim=16, per_id=10, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // per_id, dim))
    x = centres[np.arange(n) // per_id] + noise * rng.normal(size=(n, dim))
    q = centres[rng.integers(0, n // per_id, 100)] + noise * rng.normal(size=(100, dim))
    return x.astype(np.float32), q.astype(np.float32)


def brute(x, q, metric, k):
    if metric == 'cosine':
        x, q = x / np.linalg.norm(x, axis=1, keepdims=True), q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == 'euclidean':
        s = ((q[:, None].astype(np.float64) - x[None]) ** 2).sum(-1); order = np.argsort(s, 1, kind='stable')
    else:
        s = q.astype(np.float64) @ x.T.astype(np.float64); order = np.argsort(-s, 1, kind='stable')
    return np.take_along_axis(s, order, 1)[:, :k], order[:, :k]


def meta_frame(n, start=0):
    i = np.arange(start, start + n)
    return pd.DataFrame({'pid': i // 3, 'path': [f'/g/{j}.jpg' for j in i],
                         'color': pd.array([None if j % 4 == 0 else j % 10 for j in i], dtype='Int64'),
                         'conf': i / 7.0, 'flag': i % 2 == 0})


@pytest.mark.parametrize("metric", ['cosine', 'ip', 'euclidean'])
def test_exact_search_equals_brute_force(metric):
    x, q = clustered(400)
    gi = GalleryIndex(16, distance=metric).add(x[:150], meta_frame(150)).add(x[150:], meta_frame(250, 150))
    res = gi.search(q, k=8)
    assert isinstance(res, SearchResult) and res.indices.shape == (100, 8) and res.indices.dtype == np.int64
    s, i = brute(x, q, metric, 8)
    np.testing.assert_array_equal(res.indices, i)
    np.testing.assert_allclose(res.scores, s, rtol=1e-4, atol=1e-4)
    few = gi.search(q[:3], k=8)                  # up to 16 queries take the torch path
    np.testing.assert_array_equal(few.indices, i[:3]); np.testing.assert_allclose(few.scores, s[:3], rtol=1e-4, atol=1e-4)
    gi.add(x[:5], meta_frame(5, 400))            # the l2 norm cache follows additions
    s2, i2 = brute(np.concatenate([x, x[:5]]), q[:2], metric, 8)
    np.testing.assert_allclose(gi.search(q[:2], k=8).scores, s2, rtol=1e-4, atol=1e-4)
    assert gi.higher_is_better == (metric != 'euclidean')
    # metadata rows: long format, one per hit, matching the indices
    m = res.metadata
    assert list(m.columns[:4]) == ['query', 'rank', 'index', 'score'] and len(m) == 800
    np.testing.assert_array_equal(m['index'].to_numpy(), res.indices.ravel())
    assert (m['path'] == [f'/g/{j}.jpg' for j in m['index']]).all()


def test_k_clipped_single_query_and_dict_metadata():
    x, q = clustered(30)
    gi = GalleryIndex(16).add(x, {'pid': np.arange(30)})
    res = gi.search(q[0], k=50)                  # a single 1-d query, k larger than the gallery
    assert res.indices.shape == (1, 30) and sorted(res.indices[0]) == list(range(30))
    assert len(gi) == 30 and gi.embeddings.shape == (30, 16)
    np.testing.assert_allclose(np.linalg.norm(gi.embeddings, axis=1), 1, rtol=1e-5)   # cosine: stored normalised


def test_errors():
    x, q = clustered(50)
    with pytest.raises(ValueError, match='empty'): GalleryIndex(16).search(q)
    gi = GalleryIndex(16).add(x, meta_frame(50))
    with pytest.raises(ValueError, match=r'\(n, 16\)'): gi.search(q[:, :8])
    with pytest.raises(ValueError, match=r'\(n, 16\)'): gi.add(x[:, :8], meta_frame(50))
    with pytest.raises(ValueError, match='49 rows but 50'): GalleryIndex(16).add(x, meta_frame(49))
    with pytest.raises(ValueError, match='same length'): GalleryIndex(16).add(x[:3], {'a': [1, 2, 3], 'b': [1]})
    with pytest.raises(ValueError, match='differ'): gi.add(x[:2], {'pid': [1, 2]})
    with pytest.raises(ValueError, match='reserved'): GalleryIndex(16).add(x[:2], {'score': [1, 2]})
    with pytest.raises(ValueError, match='NaN'): GalleryIndex(16).add(np.full((2, 16), np.nan))
    with pytest.raises(ValueError, match='k must be'): gi.search(q, k=0)
    with pytest.raises(ValueError, match='kind must be'): GalleryIndex(16, kind='annoy')
    with pytest.raises(ValueError, match='distance must be'): GalleryIndex(16, distance='hamming')
    with pytest.raises(ValueError, match='store_embeddings'): GalleryIndex(16, store_embeddings=False)
    with pytest.raises(ValueError, match='divide'): GalleryIndex(16, kind='ivfpq', m=5)
    with pytest.raises(ValueError, match='fewer than nlist'): GalleryIndex(16, kind='ivf', nlist=64).add(x)


def test_save_load_round_trip(tmp_path):
    x, q = clustered(500)
    meta = meta_frame(500)
    gi = GalleryIndex(16).add(x, meta)
    p = gi.save(tmp_path / 'gallery')
    assert sorted(os.listdir(p)) == ['.fastreid_vehicle.json', 'embeddings.safetensors', 'header.json', 'metadata.csv']
    h = json.loads((p / 'header.json').read_text())
    assert (h['dim'], h['ntotal'], h['kind'], h['distance']) == (16, 500, 'exact', 'cosine')
    back = GalleryIndex.load(p)
    pd.testing.assert_frame_equal(back.metadata, meta)      # dtypes (int64, str, Int64 with NA, float, bool) kept
    r1, r2 = gi.search(q, 5), back.search(q, 5)
    np.testing.assert_array_equal(r1.indices, r2.indices); np.testing.assert_array_equal(r1.scores, r2.scores)
    pd.testing.assert_frame_equal(r1.metadata, r2.metadata)
    # the loaded index keeps growing
    back.add(x[:10], meta_frame(10, 500))
    assert len(back) == 510 and back.metadata['path'].iloc[-1] == '/g/509.jpg'
    # saving again replaces the folder and leaves no temporary folders behind
    back.save(p)
    assert len(GalleryIndex.load(p)) == 510 and os.listdir(tmp_path) == ['gallery']


@pytest.mark.parametrize("kind,kw", [('ivf', dict(nlist=16)), ('ivfpq', dict(nlist=16, m=4, nbits=5)),
                                     ('hnsw', dict(hnsw_m=8))])
def test_save_load_approximate(tmp_path, kind, kw):
    x, q = clustered(1000)
    gi = GalleryIndex(16, kind=kind, **kw).add(x, {'pid': np.arange(1000) // 10})
    gi.save(tmp_path / 'g')
    assert 'index.faiss' in os.listdir(tmp_path / 'g')
    back = GalleryIndex.load(tmp_path / 'g')
    assert back.kind == kind and back.params['nlist'] == gi.params['nlist']
    r1, r2 = gi.search(q, 10), back.search(q, 10)
    np.testing.assert_array_equal(r1.indices, r2.indices)
    np.testing.assert_allclose(r1.scores, r2.scores, rtol=1e-6)


def test_save_is_atomic(tmp_path, monkeypatch):
    x, q = clustered(100)
    GalleryIndex(16).add(x, meta_frame(100)).save(tmp_path / 'g')
    before = GalleryIndex.load(tmp_path / 'g').search(q, 3).indices
    bigger = GalleryIndex(16).add(np.concatenate([x, x]), meta_frame(200))
    import fastreid_vehicle.search as S
    def boom(*a, **k): raise OSError('disk full')
    monkeypatch.setattr(S, '_write_meta', boom)
    with pytest.raises(OSError, match='disk full'): bigger.save(tmp_path / 'g')
    assert os.listdir(tmp_path) == ['g']                              # no temporary folder left behind
    np.testing.assert_array_equal(GalleryIndex.load(tmp_path / 'g').search(q, 3).indices, before)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='header.json'): GalleryIndex.load(tmp_path)
    x, _ = clustered(20)
    p = GalleryIndex(16).add(x).save(tmp_path / 'g')
    h = json.loads((p / 'header.json').read_text()); h['version'] = 99
    (p / 'header.json').write_text(json.dumps(h))
    with pytest.raises(ValueError, match='version'): GalleryIndex.load(p)


@pytest.mark.parametrize("kind,kw", [('ivf', dict(nprobe=8)), ('ivfpq', dict(m=8, nbits=6, nprobe=8)),
                                     ('ivfpq', dict(m=8, nbits=6, nprobe=8, refine=1)), ('hnsw', dict())])
def test_approximate_recall_is_high(kind, kw):
    x, q = clustered(5000)
    exact = GalleryIndex(16).add(x).search(q, 10).indices
    approx = GalleryIndex(16, kind=kind, **kw).add(x).search(q, 10).indices
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, exact)])
    assert recall > (0.8 if kw.get('refine') == 1 else 0.95), recall


def test_approximate_train_then_add_and_no_stored_embeddings():
    x, q = clustered(3000)
    gi = GalleryIndex(16, kind='ivf', nlist=32, store_embeddings=False).train_index(x[:2000])
    gi.add(x[:1000]).add(x[1000:])
    assert len(gi) == 3000 and gi.params['nlist'] == 32
    with pytest.raises(ValueError, match='store_embeddings=False'): gi.embeddings
    exact = GalleryIndex(16).add(x).search(q, 10).indices
    got = gi.search(q, 10, nprobe=32).indices          # every list probed: exact
    np.testing.assert_array_equal(np.sort(got, 1), np.sort(exact, 1))


def test_index_saved_with_old_l2_name_loads_as_euclidean(tmp_path):
    "Indexes saved before the rename to `distance` stored `metric`, some as 'l2' (before 'euclidean'); they still load"
    import json
    rng = np.random.default_rng(0)
    gi = GalleryIndex(8, distance='euclidean').add(rng.normal(size=(20, 8)).astype(np.float32))
    p = gi.save(tmp_path/'idx')
    headers = [f for f in p.iterdir() if f.suffix == '.json' and '"distance"' in f.read_text()]
    assert len(headers) == 1
    h = json.loads(headers[0].read_text()); del h['distance']; h['metric'] = 'l2'; headers[0].write_text(json.dumps(h))
    old = GalleryIndex.load(p)
    assert old.distance == 'euclidean' and not old.higher_is_better
    np.testing.assert_allclose(old.search(gi.embeddings[:2], k=3).scores, gi.search(gi.embeddings[:2], k=3).scores)
    with pytest.raises(ValueError, match='distance'): GalleryIndex(8, distance='l2')


def _rescored_reference(emb, q, cand, k, distance):
    "The exact re-scoring the index did itself before faiss' IndexRefineFlat: exact scores of the candidates, best k"
    valid = cand >= 0
    c = emb[np.where(valid, cand, 0)]
    if distance == 'euclidean': s = ((c - q[:, None]) ** 2).sum(-1); s[~valid] = np.inf; order = np.argsort(s, 1, kind='stable')
    else: s = np.einsum('qkd,qd->qk', c, q); s[~valid] = -np.inf; order = np.argsort(-s, 1, kind='stable')
    order = order[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(np.where(valid, cand, -1), order, 1)


@pytest.mark.parametrize("distance", ['cosine', 'euclidean'])
def test_ivfpq_refine_equals_exact_rescoring_of_the_candidates(distance, tmp_path):
    x, q = clustered(2000)
    gi = GalleryIndex(16, distance=distance, kind='ivfpq', m=4, nbits=6, nlist=16, nprobe=4, refine=3).add(x)
    assert type(gi._index).__name__ == 'IndexRefineFlat'
    emb = gi.embeddings
    qn = q / np.linalg.norm(q, axis=1, keepdims=True) if distance == 'cosine' else q
    np.testing.assert_allclose(emb, x / np.linalg.norm(x, axis=1, keepdims=True) if distance == 'cosine' else x, rtol=1e-5, atol=1e-6)
    cand = gi.search(q, 30, refine=1).indices                     # the PQ candidates (k * refine)
    s, i = _rescored_reference(emb, qn.astype(np.float32), cand, 10, distance)
    res = gi.search(q, 10)
    np.testing.assert_array_equal(res.indices, i)
    np.testing.assert_allclose(res.scores, s, rtol=1e-4, atol=1e-4)
    assert not np.allclose(gi.search(q, 10, refine=1).scores, res.scores)   # the PQ scores differ: re-scoring happened
    back = GalleryIndex.load(gi.save(tmp_path/'g'))                  # saved as IVF-PQ + embeddings, rebuilt on load
    assert type(back._index).__name__ == 'IndexRefineFlat'
    np.testing.assert_array_equal(back.search(q, 10).indices, res.indices)
    np.testing.assert_array_equal(back.embeddings, emb)


# ---------------------------------------------------------------- checks moved from nbs/05_search.ipynb
def test_search_notebook_examples(tmp_path):
    import os
    rng = np.random.default_rng(0)
    g = rng.normal(size=(500, 16)).astype(np.float32)
    gi = GalleryIndex(16).add(g[:300], {'pid': np.arange(300) // 3, 'path': [f'/g/{i}.jpg' for i in range(300)]})
    gi.add(g[300:], pd.DataFrame({'pid': np.arange(300, 500) // 3, 'path': [f'/g/{i}.jpg' for i in range(300, 500)]}))
    q = rng.normal(size=(4, 16)).astype(np.float32)
    res = gi.search(q, k=5)
    S = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    np.testing.assert_array_equal(res.indices, np.argsort(-S, 1, kind='stable')[:, :5])
    np.testing.assert_allclose(res.scores, np.sort(S, 1)[:, ::-1][:, :5], atol=1e-5)
    assert res.metadata['path'].iloc[0] == f"/g/{res.indices[0, 0]}.jpg"
    for f, msg in [(lambda: GalleryIndex(16).search(q), 'empty'), (lambda: gi.search(rng.normal(size=(2, 8))), r'\(n, 16\)'),
                   (lambda: GalleryIndex(16).add(g[:10], {'pid': np.arange(9)}), '9 rows but 10'),
                   (lambda: gi.add(g[:2], {'other': [1, 2]}), 'differ'), (lambda: GalleryIndex(16, kind='annoy'), 'kind must be')]:
        with pytest.raises(Exception, match=msg): f()
    meta = pd.DataFrame({'pid': np.arange(500) // 3, 'path': [f'/g/{i}.jpg' for i in range(500)],
                         'color': pd.array([1, None] * 250, dtype='Int64'), 'conf': np.linspace(0, 1, 500)})
    gi2 = GalleryIndex(16).add(g, meta)
    gi2.save(tmp_path/'gallery'); gi2.save(tmp_path/'gallery')
    back = GalleryIndex.load(tmp_path/'gallery')
    pd.testing.assert_frame_equal(back.metadata, meta)
    r1, r2 = gi2.search(q, 7), back.search(q, 7)
    np.testing.assert_array_equal(r1.indices, r2.indices); np.testing.assert_allclose(r1.scores, r2.scores)
    (tmp_path/'photos').mkdir(); (tmp_path/'photos'/'car.jpg').write_bytes(b'jpeg')
    with pytest.raises(Exception, match='car.jpg'): gi2.save(tmp_path/'photos')
    assert os.listdir(tmp_path/'photos') == ['car.jpg']
