"Embeddings, learner evaluation and exports (safetensors, ONNX checked with onnxruntime)."
import numpy as np, pytest, torch
from fastreid_vehicle.learner import reid_learner
from fastreid_vehicle.inference import embed, save_weights, load_weights, export_onnx
from fastreid_vehicle.evaluation import evaluate_learner, evaluate_features
from fastreid_vehicle.metrics import split_query_gallery, evaluate_reid, pairwise_distance

def test_evaluate_learner_equals_evaluate_features(tiny_dls):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False)
    with learn.no_bar(): res, f = evaluate_learner(learn), embed(learn)
    items = tiny_dls.valid.items
    q, g = split_query_gallery(items)
    ref = evaluate_reid(pairwise_distance(f[q], f[g]), items.pid.values[q], items.pid.values[g], items.camid.values[q], items.camid.values[g])
    assert res.mAP == pytest.approx(ref.mAP) and res.rank1 == pytest.approx(ref.rank1)

def test_flip_embedding_is_mean_of_both_views(tiny_dls):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, amp=False)   # fp32 both ways (bf16 CPUs)
    with learn.no_bar(): e, ef = embed(learn), embed(learn, flip_tta=True)
    x = tiny_dls.valid.one_batch()[0]
    with torch.no_grad(): want = (learn.model.eval()(x) + learn.model(x.flip(-1))) / 2
    assert torch.allclose(ef[:len(x)], want, atol=1e-4) and not torch.allclose(e, ef)

def test_split_query_gallery_errors():
    import pandas as pd
    with pytest.raises(ValueError, match='split'): split_query_gallery(pd.DataFrame({'pid': [1]}))
    with pytest.raises(ValueError, match='query and gallery'): split_query_gallery(pd.DataFrame({'split': ['query']}))

@pytest.mark.parametrize('method', ['bot', 'mfgnet', 'anet'])
def test_safetensors_and_onnx_round_trip(tiny_dls, tmp_path, method):
    m = reid_learner(tiny_dls, method, backbone='resnet18', pretrained=False).model.eval()
    m2 = reid_learner(tiny_dls, method, backbone='resnet18', pretrained=False).model.eval()
    load_weights(m2, save_weights(m, tmp_path/'w.safetensors'))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): assert torch.equal(m(x), m2(x))
    if method == 'bot':
        p = export_onnx(m, tmp_path/'m.onnx', size=64)
        assert p.exists() and not list(tmp_path.glob('*.tmp*'))
    with pytest.raises(FileNotFoundError): load_weights(m2, tmp_path/'missing.safetensors')

# the colour + type lookup and chance baselines, on hand-made query/gallery rows
import pandas as pd
from fastreid_vehicle.evaluation import baseline_embeddings, baseline_results

def _items(rows):
    "A validation `items` frame from (split, pid, camid, color, type) tuples."
    return pd.DataFrame(rows, columns=['split', 'pid', 'camid', 'color', 'type'])

# every query has exactly one gallery image of its colour and type, and it is its own vehicle: rank-1 must be 1
MATCHING = _items([('query', 1, 1, 'red', 'sedan'), ('query', 4, 1, 'blue', 'suv'),
                   ('gallery', 1, 2, 'red', 'sedan'), ('gallery', 2, 2, 'blue', 'sedan'),
                   ('gallery', 3, 2, 'red', 'suv'), ('gallery', 4, 2, 'blue', 'suv')])
# the query's own vehicle is labelled another colour; another vehicle has its colour and type: rank-1 must be 0
REPAINTED = _items([('query', 1, 1, 'red', 'sedan'),
                    ('gallery', 1, 2, 'blue', 'sedan'), ('gallery', 2, 2, 'red', 'sedan'), ('gallery', 3, 2, 'green', 'suv')])

@pytest.mark.parametrize('distance', ['euclidean', 'cosine'])
def test_lookup_ranks_same_colour_and_type_first(distance):
    for seed in range(3):  # the random tie-break must never outweigh an attribute
        res = evaluate_features(MATCHING, baseline_embeddings(MATCHING, 'lookup', seed=seed), distance=distance)
        assert res.rank1 == 1. and res.mAP == pytest.approx(1.)
        res = evaluate_features(REPAINTED, baseline_embeddings(REPAINTED, 'lookup', seed=seed), distance=distance)
        assert res.rank1 == 0. and res.mAP < 1.

def test_lookup_uses_both_attributes():
    # query: a red sedan; gallery: a red suv, a blue sedan, then its own red sedan
    items = _items([('query', 1, 1, 'red', 'sedan'),
                    ('gallery', 2, 2, 'red', 'suv'), ('gallery', 3, 2, 'blue', 'sedan'), ('gallery', 1, 2, 'red', 'sedan')])
    assert evaluate_features(items, baseline_embeddings(items), distance='euclidean').rank1 == 1.
    dist = lambda f: torch.cdist(f[:1], f[1:])[0].tolist()
    d = dist(baseline_embeddings(items))                     # the right one first, the half matches after it
    assert d[2] < .01 and min(d[0], d[1]) > 1
    d = dist(baseline_embeddings(items, attrs=('color',)))   # by colour alone, the red suv ties with the red sedan
    assert abs(d[0] - d[2]) < .01 and d[1] > d[2] + 1
    d = dist(baseline_embeddings(items, attrs=('type',)))    # by type alone, the blue sedan does
    assert abs(d[1] - d[2]) < .01 and d[0] > d[2] + 1

def test_baseline_results_lookup_and_chance():
    res = baseline_results(MATCHING)
    assert set(res) == {'lookup', 'chance'}
    assert res['lookup'].rank1 == 1. and res['lookup'].mAP == pytest.approx(1.) and res['lookup'].mINP == pytest.approx(1.)
    assert all(0 <= r.rank1 <= 1 and 0 <= r.mAP <= 1 and 0 <= r.mINP <= 1 for r in res.values())
    assert baseline_results(REPAINTED)['lookup'].rank1 == 0.
    again = baseline_results(MATCHING)
    assert again['chance'].mAP == res['chance'].mAP   # deterministic for a seed

def test_chance_ignores_attributes():
    base = baseline_embeddings(MATCHING, 'chance', seed=1)
    recoloured = MATCHING.assign(color='black', type=['van', 'bus', 'suv', 'van', 'bus', 'suv'])
    assert base.shape[0] == len(MATCHING)
    assert torch.equal(base, baseline_embeddings(recoloured, 'chance', seed=1))
    assert torch.equal(base, baseline_embeddings(MATCHING.drop(columns=['color', 'type']), 'chance', seed=1))  # no attributes needed
    assert not torch.equal(base, baseline_embeddings(MATCHING, 'chance', seed=2))
    assert not torch.equal(baseline_embeddings(MATCHING, 'lookup'), baseline_embeddings(recoloured, 'lookup'))

def test_baseline_errors():
    with pytest.raises(ValueError, match='type'): baseline_embeddings(MATCHING.drop(columns=['type']))
    with pytest.raises(ValueError, match='make'): baseline_embeddings(MATCHING, attrs=('color', 'make'))
    with pytest.raises(ValueError, match='type'): baseline_results(MATCHING.drop(columns=['type']))
    with pytest.raises(ValueError, match="'nearest'"): baseline_embeddings(MATCHING, 'nearest')


def test_evaluate_learner_uses_the_models_distance(tiny_dls):
    "MFG-Net with the paper's Euclidean distance is scored with it; `distance=` still overrides"
    learn = reid_learner(tiny_dls, 'mfgnet', backbone='resnet18', pretrained=False, eval_distance='euclidean', bnneck=False, cls_bias=True)
    with learn.no_bar(): feats = embed(learn)
    items = tiny_dls.valid.items
    q, g = (items['split'] == 'query').to_numpy(), (items['split'] == 'gallery').to_numpy()
    args = (items['pid'].to_numpy()[q], items['pid'].to_numpy()[g], items['camid'].to_numpy()[q], items['camid'].to_numpy()[g])
    ref = {m: evaluate_reid(pairwise_distance(feats[torch.from_numpy(q)], feats[torch.from_numpy(g)], m), *args) for m in ('euclidean', 'cosine')}
    with learn.no_bar():
        assert evaluate_learner(learn).mAP == pytest.approx(ref['euclidean'].mAP)
        assert evaluate_learner(learn, distance='cosine').mAP == pytest.approx(ref['cosine'].mAP)


def test_embed_l2_normalized_has_unit_rows(tiny_dls):
    "Moved from nbs/11_inference.ipynb"
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False)
    with learn.no_bar():
        e, ef, en = embed(learn), embed(learn, flip_tta=True), embed(learn, l2_normalize=True)
    assert e.shape == ef.shape
    torch.testing.assert_close(en.norm(dim=1), torch.ones(len(e)), atol=1e-5, rtol=0)
