"Embeddings, learner evaluation and exports (safetensors, ONNX checked with onnxruntime)."
import numpy as np, pytest, torch
from fastreid_vehicle.learner import reid_learner
from fastreid_vehicle.inference import embed, evaluate_learner, save_weights, load_weights, export_onnx, split_query_gallery
from fastreid_vehicle.metrics import evaluate_features

def test_evaluate_learner_equals_evaluate_features(tiny_dls):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18')
    with learn.no_bar(): res, f = evaluate_learner(learn), embed(learn)
    items = tiny_dls.valid.items
    q, g = split_query_gallery(items)
    ref = evaluate_features(f[q], f[g], items.pid.values[q], items.pid.values[g], items.camid.values[q], items.camid.values[g])
    assert res.mAP == pytest.approx(ref.mAP) and res.rank1 == pytest.approx(ref.rank1)

def test_flip_embedding_is_mean_of_both_views(tiny_dls):
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18')
    with learn.no_bar(): e, ef = embed(learn), embed(learn, flip=True)
    x = tiny_dls.valid.one_batch()[0]
    with torch.no_grad(): want = (learn.model.eval()(x) + learn.model(x.flip(-1))) / 2
    assert torch.allclose(ef[:len(x)], want, atol=1e-4) and not torch.allclose(e, ef)

def test_split_query_gallery_errors():
    import pandas as pd
    with pytest.raises(ValueError, match='split'): split_query_gallery(pd.DataFrame({'pid': [1]}))
    with pytest.raises(ValueError, match='query and gallery'): split_query_gallery(pd.DataFrame({'split': ['query']}))

@pytest.mark.parametrize('arch', ['bot', 'mfgnet', 'anet'])
def test_safetensors_and_onnx_round_trip(tiny_dls, tmp_path, arch):
    m = reid_learner(tiny_dls, arch, backbone='resnet18').model.eval()
    m2 = reid_learner(tiny_dls, arch, backbone='resnet18').model.eval()
    load_weights(m2, save_weights(m, tmp_path/'w.safetensors'))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): assert torch.equal(m(x), m2(x))
    if arch == 'bot':
        p = export_onnx(m, tmp_path/'m.onnx', size=64)
        assert p.exists() and not list(tmp_path.glob('*.tmp*'))
    with pytest.raises(FileNotFoundError): load_weights(m2, tmp_path/'missing.safetensors')
