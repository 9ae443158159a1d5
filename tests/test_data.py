"Tests of `fastreid_vehicle.data`: targets, validation order, augmentation, P x K sampling, Learner compatibility."
import math, pickle, random, sys, types, warnings
from collections import Counter
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import numpy as np, pandas as pd, pytest, torch
import torch.nn.functional as F
from hypothesis import given, settings, assume, event, strategies as st
from PIL import Image
from torch import nn
from fastai.data.all import DataBlock, CategoryBlock, ColReader, ColSplitter, TfmdDL
from fastai.vision.core import PILImage, TensorImage
from fastai.vision.data import ImageBlock
from fastai.vision.augment import Resize
from fastai.learner import Learner, load_learner
from fastai.callback.core import Callback
import fastai.callback.schedule, fastai.callback.progress  # noqa: F401  (fit_one_cycle, lr_find, fine_tune; no_bar)

from fastreid_vehicle.data import *

torch.set_num_threads(1)
COLORS = {2: 'orange', 5: 'red', 9: 'brown'}
TYPES = {1: 'sedan', 3: 'van'}

# ---------------------------------------------------------------- helpers

def write_reid_df(dest, n_train=12, n_test=4, per_id=(2, 5), size=(32, 32), seed=0, constant=False):
    "A re-id DataFrame over tiny PNG / JPEG images (half each) written under `dest`, gallery rows listed first"
    rng, dest, rows = np.random.default_rng(seed), Path(dest), []
    dest.mkdir(parents=True, exist_ok=True)
    for pid in range(101, 101 + n_train + n_test):
        train = pid < 101 + n_train
        n = int(rng.integers(per_id[0], per_id[1] + 1)) if train else 3
        color = [2, 5, 9][pid % 3]
        vtype = [1, 3, None][pid % 3]
        for j in range(n):
            if constant: img = np.full(size + (3,), (pid * 7) % 200 + 30, np.uint8)
            else: img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
            fn = dest / f'{pid}_{j}.{"png" if j % 2 else "jpg"}'
            Image.fromarray(img).save(fn)
            split = 'train' if train else ('query' if j == 0 else 'gallery')
            rows.append(dict(path=str(fn), pid=pid, camid=j, split=split, color=color if j != 1 else None,
                             type=vtype))
    df = pd.DataFrame(rows)
    df['color'], df['type'] = df['color'].astype('Int64'), df['type'].astype('Int64')
    df = pd.concat([df[df.split == 'gallery'], df[df.split == 'train'], df[df.split == 'query']]).reset_index(drop=True)
    df.attrs = dict(dataset='test', color_names=COLORS, type_names=TYPES)
    return df

@pytest.fixture(scope='module')
def df(tmp_path_factory): return write_reid_df(tmp_path_factory.mktemp('imgs'))

@pytest.fixture(scope='module')
def dls(df): return ReidDataLoaders.from_df(df, size=32, P=4, K=2, bs_valid=8, seed=0)

def light(ids):
    "A light dataset of (index, id) pairs"
    return [(i, l) for i, l in enumerate(ids)]

def PK(ids, **kwargs):
    "A P x K loader over `light(ids)`, in the main process"
    return PKDataLoader(light(ids), num_workers=0, **kwargs)

def batches_of(dl):
    "The id lists of all batches of one epoch of `dl` on a light dataset"
    return [yb.tolist() for _, yb in dl]

def assert_pk(labels, P, K):
    c = Counter(labels)
    assert len(c) == P and set(c.values()) == {K}, c

# ---------------------------------------------------------------- P x K property tests

id_tables = st.lists(st.integers(1, 8), min_size=2, max_size=25)   # images per identity

@settings(max_examples=80, deadline=None)
@given(counts=id_tables, P=st.integers(1, 6), K=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_pk_batches_structure(counts, P, K, seed):
    ids = [i for i, n in enumerate(counts) for _ in range(n)]
    n = len(ids)
    event('cannot form P x K' if len(counts) < P or P * K > n else 'P x K batches')
    if len(counts) < P or P * K > n:
        with pytest.raises(ValueError, match='P=|P\\*K='): PK(ids, P=P, K=K, seed=seed)
        return
    dl = PK(ids, P=P, K=K, seed=seed)
    assert len(dl) == n // (P * K)
    batches = [(xb.tolist(), yb.tolist()) for xb, yb in dl]
    assert len(batches) == len(dl)
    for pos, labels in batches:
        assert len(pos) == P * K
        assert_pk(labels, P, K)
        assert all(ids[p] == l for p, l in zip(pos, labels))           # positions carry their identity
        for l in set(labels):
            chunk = [p for p, q in zip(pos, labels) if q == l]
            assert chunk == pos[labels.index(l):labels.index(l) + K]    # the K images of an id are consecutive
            n_l = counts[l]
            if n_l >= K: assert len(set(chunk)) == K                    # no repeat when the id has enough images
            else: assert set(chunk) == {p for p, q in enumerate(ids) if q == l}   # all its images, + replacement

@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(1, 8), min_size=6, max_size=25), seed=st.integers(0, 2**16))
def test_pk_deterministic_for_seed(counts, seed):
    ids = [i for i, n in enumerate(counts) for _ in range(n)]
    assume(len(ids) >= 2 * 3 * 2)
    a, b = PK(ids, P=3, K=2, seed=seed), PK(ids, P=3, K=2, seed=seed)
    ea, eb = [batches_of(a) for _ in range(2)], [batches_of(b) for _ in range(2)]
    assert ea == eb                                                    # same seed: same epochs
    assert [list(map(sorted, e)) for e in ea]                          # not empty
    c = PK(ids, P=3, K=2, seed=seed + 1)
    pa, pc = a.new().get_idxs(), c.get_idxs()
    assert pa == PK(ids, P=3, K=2, seed=seed).get_idxs()   # `new` keeps the seed
    assert pa != pc                                                    # another seed: other batches

def test_pk_epochs_differ_and_cover():
    ids = [i // 6 for i in range(120)]                                 # 20 ids x 6 images
    dl = PK(ids, P=4, K=3, seed=0)
    e1, e2 = dl.get_idxs(), (dl.randomize(), dl.get_idxs())[1]
    assert e1 != e2
    assert len(e1) == len(dl) * 12 == 120 and len(set(e1)) == 120      # each image once per epoch here

def test_pk_underpopulated_with_replacement():
    ids = [0] + [1] * 4 + [2] * 4                                      # id 0 has a single image
    dl = PK(ids, P=3, K=3, seed=0)
    idx = dl.get_idxs()
    assert_pk([ids[i] for i in idx], 3, 3)
    assert [i for i in idx if ids[i] == 0] == [0, 0, 0]

@pytest.mark.parametrize('P,K,match', [(5, 2, 'P=5 identities per batch, but the training set has only 4'),
                                       (2, 1, 'K \\(images per identity\\) must be an int >= 2'),
                                       (0, 2, 'P \\(identities per batch\\) must be a positive int'),
                                       (2.5, 2, 'P \\(identities per batch\\)'),
                                       (4, 4, 'P\\*K=4\\*4=16 images per batch, but the training set has only 12')])
def test_pk_errors(P, K, match):
    ids = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    with pytest.raises(ValueError, match=match): PK(ids, P=P, K=K)
    with pytest.raises(ValueError, match=match): check_pk(ids, P, K)

def test_pk_errors_other():
    with pytest.raises(ValueError, match='world_size=3'): PK([0, 0, 1, 1] * 2, P=2, K=2, world_size=3)
    with pytest.raises(ValueError, match='ids has 3 labels'): PKDataLoader(light([0, 0, 1, 1]), P=2, K=2, ids=[0, 0, 1], num_workers=0)
    with pytest.raises(ValueError, match='K \\(images per identity\\)'): PKSamplerCallback(P=4, K=1)

def test_pk_empty_dataset_and_pickle():
    dl = PK([0, 0, 1, 1, 2, 2], P=2, K=2, seed=3)
    empty = dl.new([])
    assert len(empty) == 0 and list(empty) == [] and empty.get_idxs() == []
    dl2 = pickle.loads(pickle.dumps(dl))
    assert (dl2.P, dl2.K, len(dl2)) == (2, 2, 1) and dl2.get_idxs() == dl.get_idxs()

# ---------------------------------------------------------------- distributed: whole identities per process

@pytest.fixture
def DistributedDL():
    "fastai's `DistributedDL` with a no-op broadcast (fastai.distributed needs `accelerate`: stubbed when absent)"
    saved = {k: sys.modules.get(k) for k in ('accelerate', 'fastai.distributed')}
    try:
        import accelerate  # noqa: F401
    except ImportError:
        stub = types.ModuleType('accelerate')
        stub.Accelerator = type('Accelerator', (), {'__init__': lambda self, **kwargs: None})
        sys.modules['accelerate'] = stub
        sys.modules.pop('fastai.distributed', None)
    from fastai.distributed import DistributedDL as DDL
    class _DDL(DDL):
        def _broadcast(self, t, rank): return list(t)
    yield _DDL
    for k, v in saved.items():
        if v is None: sys.modules.pop(k, None)
        else: sys.modules[k] = v

@pytest.mark.parametrize('n', [40, 47, 53])
def test_pk_distributed_whole_identities(DistributedDL, n):
    ids = [i % 9 for i in range(n)]
    P, K, ws = 3, 2, 2
    per_rank = []
    for rank in range(ws):
        dl = PK(ids, P=P, K=K, seed=0, world_size=ws)
        assert len(dl) % ws == 0
        ddl = DistributedDL(dl, rank=rank, world_size=ws)
        bs = [yb.tolist() for _, yb in ddl]
        assert len(bs) == len(ddl) == len(dl) // ws
        for b in bs: assert_pk(b, P, K)                               # whole identities on every rank
        per_rank.append(bs)
    ref = PK(ids, P=P, K=K, seed=0, world_size=ws)
    ref.randomize()                                                    # as `__iter__` does before `get_idxs`
    full = ref.get_idxs()
    assert sum(per_rank, []) == [[ids[i] for i in full[j:j + P * K]] for j in range(0, len(full), P * K)]

# ---------------------------------------------------------------- per-image random erasing

def test_per_image_erasing():
    x = TensorImage(torch.zeros(32, 3, 40, 24))
    out = PerImageRandomErasing(p=1.)(x, split_idx=0)
    m = (out != 0).any(1).flatten(1)
    assert m.any(1).all() and len({r.numpy().tobytes() for r in m}) == 32
    frac = m.float().mean(1)
    assert frac.min() > 0.01 and frac.max() < 0.45
    assert torch.equal(PerImageRandomErasing(p=1.)(x, split_idx=1), x)
    zero = PerImageRandomErasing(p=1., mode='zero')(TensorImage(torch.ones(4, 3, 16, 16)), split_idx=0)
    assert (zero == 0).any() and ((zero == 0) | (zero == 1)).all()
    with pytest.raises(ValueError, match='mode'): PerImageRandomErasing(mode='mean')

def test_pad_random_crop():
    arr = np.random.default_rng(0).integers(1, 255, (20, 12, 3), dtype=np.uint8)
    im = PILImage.create(arr)
    t = PadRandomCrop(pad=4)
    padded = np.pad(arr, ((4, 4), (4, 4), (0, 0)))
    outs = []
    for _ in range(10):
        o = np.asarray(t(im, split_idx=0))
        assert o.shape == arr.shape
        assert np.array_equal(o, padded[t.dy:t.dy + 20, t.dx:t.dx + 12])
        outs.append((t.dx, t.dy))
    assert len(set(outs)) > 1

# ---------------------------------------------------------------- end to end from a DataFrame of images

def test_targets_and_vocabs(df, dls):
    train = df[df.split == 'train']
    assert dls.id_vocab == sorted(train.pid.unique().tolist()) and dls.n_ids == dls.c == 12
    assert dls.attr_vocabs == {'color': [2, 5, 9], 'type': [1, 3]} and dls.attr_classes == {'color': 3, 'type': 2}
    ds = dls.train.dataset
    for i in range(len(ds)):
        row = ds.items.iloc[i]
        _, y_id, y_color, y_type = ds[i]
        assert all(y.dtype == torch.long and y.ndim == 0 for y in (y_id, y_color, y_type))
        assert y_id == dls.id_vocab.index(row.pid)
        assert y_color == (-1 if pd.isna(row.color) else [2, 5, 9].index(row.color))
        assert y_type == (-1 if pd.isna(row.type) else [1, 3].index(row.type))
    xb, *yb = dls.one_batch()
    assert xb.shape == (8, 3, 32, 32) and all(y.shape == (8,) and y.dtype == torch.long for y in yb)
    assert_pk(yb[0].tolist(), 4, 2)
    assert len(dls.train) == len(train) // 8

def test_valid_order_and_items(df, dls):
    v = dls.valid.items
    q, g = df[df.split == 'query'], df[df.split == 'gallery']
    assert v.split.tolist() == ['query'] * len(q) + ['gallery'] * len(g)
    assert v.pid.tolist() == q.pid.tolist() + g.pid.tolist()
    assert v.path.tolist() == q.path.tolist() + g.path.tolist()
    assert {'pid', 'camid', 'split'} <= set(v.columns)
    assert not dls.valid.shuffle and not dls.valid.drop_last
    ys = [yb for _, yb, *_ in dls.valid]
    assert len(ys) == len(dls.valid) == math.ceil(len(v) / 8)
    assert [dls.all_ids[i] for i in torch.cat(ys).tolist()] == v.pid.tolist()   # identity codes, loader order = items order

def test_valid_resize_only(df):
    dls = ReidDataLoaders.from_df(df, size=(24, 16), P=4, K=2, bs_valid=4)
    xb = dls.valid.one_batch()[0]
    assert torch.equal(xb, dls.valid.one_batch()[0])                   # no randomness on validation
    im = Image.open(dls.valid.items.path.iloc[0]).convert('RGB').resize((16, 24), Image.BILINEAR)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    ref = (torch.tensor(np.asarray(im)).permute(2, 0, 1).float() / 255 - mean[:, None, None]) / std[:, None, None]
    assert torch.allclose(xb[0].cpu(), ref, atol=1e-5)

def test_augmentation_shapes_384x128(df):
    dls = ReidDataLoaders.from_df(df, size=(384, 128), P=2, K=2, bs_valid=4, seed=0)
    assert dls.train.one_batch()[0].shape == (4, 3, 384, 128)
    assert dls.valid.one_batch()[0].shape == (4, 3, 384, 128)

def test_flip_and_erasing_in_loader(tmp_path):
    df = write_reid_df(tmp_path, n_train=6, per_id=(4, 4), size=(24, 16), constant=False)
    kw = dict(size=(24, 16), P=3, K=2, bs_valid=4, seed=5, pad=0)
    plain = ReidDataLoaders.from_df(df, flip_p=0, erase_p=0, **kw).train.one_batch()[0]
    flipped = ReidDataLoaders.from_df(df, flip_p=1, erase_p=0, **kw).train.one_batch()[0]
    assert torch.equal(flipped, plain.flip(-1))                        # same items (seed), all flipped
    erased = ReidDataLoaders.from_df(df, flip_p=0, erase_p=1, **kw).train.one_batch()[0]
    m = (erased != plain).any(1).flatten(1)
    assert m.any(1).all()                                               # every image erased ...
    assert len({r.numpy().tobytes() for r in m}) == len(m)             # ... each with its own rectangle

def test_missing_attribute_column(df):
    dls = ReidDataLoaders.from_df(df.drop(columns='type'), size=16, P=2, K=2, bs_valid=4)
    assert dls.attr_classes == {'color': 3, 'type': 0}
    assert (dls.one_batch()[3] == -1).all()
    d2 = ReidDataLoaders.from_df(df, size=16, P=2, K=2, bs_valid=4, attrs=('color',))
    assert len(d2.one_batch()) == 3 and d2.attr_classes == {'color': 3}

def test_from_df_errors(df):
    with pytest.raises(ValueError, match="sampler must be 'pk' or 'random'"): ReidDataLoaders.from_df(df, sampler='x')
    with pytest.raises(ValueError, match='size must be'): ReidDataLoaders.from_df(df, size=(32,), P=2, K=2)
    with pytest.raises(ValueError, match="lacks the column\\(s\\) \\['camid'\\]"):
        ReidDataLoaders.from_df(df.drop(columns='camid'))
    with pytest.raises(ValueError, match="no 'gallery' rows"): ReidDataLoaders.from_df(df[df.split != 'gallery'])
    with pytest.raises(ValueError, match='P=13 identities per batch, but the training set has only 12'):
        ReidDataLoaders.from_df(df, P=13, K=2)
    with pytest.raises(ValueError, match='K \\(images per identity\\)'): ReidDataLoaders.from_df(df, P=2, K=1)

def test_random_sampler(df):
    dls = ReidDataLoaders.from_df(df, size=16, P=4, K=2, sampler='random', seed=0)
    assert type(dls.train) is ReidDL and dls.train.bs == 8 and dls.train.shuffle
    assert len(dls.train) == (df.split == 'train').sum() // 8

def test_show_batch(dls):
    import matplotlib.pyplot as plt
    ctxs = dls.show_batch(max_n=4)
    titles = [ax.get_title() for ax in ctxs]
    assert len(titles) == 4 and all(t.startswith('id ') and ' · cam ' in t for t in titles)
    assert any(name in t for t in titles for name in COLORS.values())
    vt = [ax.get_title() for ax in dls.valid.show_batch(max_n=3)]
    assert all('query' in t for t in vt)
    dls.show_batch(b=dls.one_batch(), max_n=2)                         # explicit batch: fastai's route
    plt.close('all')

def test_new_keeps_pk(dls):
    a, b = dls.train.new(), dls.train.new()
    assert type(a) is PKDataLoader and (a.P, a.K, len(a)) == (4, 2, len(dls.train))
    assert a.get_idxs() == b.get_idxs()
    seq = dls.train.new(shuffle=False)
    assert type(seq) is ReidDL and sum(len(yb) for _, yb, *_ in seq) == len(dls.train.dataset)

# ---------------------------------------------------------------- Learner compatibility

def reid_loss(pred, y_id, y_color, y_type):
    "A loss in the project's signature; validation ids (codes in `all_ids`) are clamped (this only drives the loop)"
    return F.cross_entropy(pred, y_id.clamp(0, pred.shape[1] - 1))

def tiny_model(n):
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, n))

def two_groups(m): return [list(m[0].parameters()), list(m[3].parameters())]

def test_learner_fit_lr_find_fine_tune_export(df, tmp_path):
    dls = ReidDataLoaders.from_df(df, size=16, P=4, K=2, bs_valid=16, seed=0, path=tmp_path)
    learn = Learner(dls, tiny_model(dls.n_ids), loss_func=reid_loss, splitter=two_groups)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-2)
        assert len(learn.recorder.lrs) == len(dls.train) and math.isclose(learn.pct_train, 1.)
        sug = learn.lr_find(num_it=6, show_plot=False)
        assert sug.valley > 0 and 0 < len(learn.recorder.lrs) <= 6
        learn.fine_tune(1, freeze_epochs=1)
        preds, targs = learn.get_preds(ds_idx=0)
        assert len(preds) == len(dls.train.dataset)                   # sequential pass over the training set
        preds, y_id = learn.get_preds(ds_idx=1)[0], learn.get_preds(ds_idx=1)[1]
        assert len(preds) == len(dls.valid.items)
        learn.export('export.pkl')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn2 = load_learner(tmp_path / 'export.pkl')
    assert learn2.dls.n_ids == 12 and learn2.dls.attr_classes == {'color': 3, 'type': 2}
    assert isinstance(learn2.dls.train, PKDataLoader) and len(learn2.dls.train) == 0
    assert len(learn2.dls.train_ds) == 0 and len(learn2.dls.valid_ds) == 0
    assert (tmp_path / 'export.pkl').stat().st_size < 200_000          # no items, no images inside

def plain_dls(df):
    "Ordinary fastai DataLoaders (category target) over the training images"
    trn = df[df.split == 'train'].assign(is_valid=False)
    trn = pd.concat([trn, trn.head(6).assign(is_valid=True)])
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('path'), get_y=ColReader('pid'),
                     splitter=ColSplitter('is_valid'), item_tfms=Resize(16)).dataloaders(trn, bs=5)

def test_callback_on_plain_dataloaders(df):
    dls = plain_dls(df)
    learn = Learner(dls, tiny_model(dls.c), loss_func=nn.CrossEntropyLoss(), cbs=PKSamplerCallback(P=3, K=2, seed=0))
    assert isinstance(learn.dls.train, PKDataLoader) and len(learn.dls.train) == len(dls.train_ds) // 6
    for _, yb in learn.dls.train: assert_pk(yb.tolist(), 3, 2)
    with learn.no_bar(), learn.no_logging():
        learn.lr_find(num_it=4, show_plot=False)
        learn.fit_one_cycle(1, 1e-2)
    assert len(learn.recorder.lrs) == len(learn.dls.train) and math.isclose(learn.pct_train, 1.)

def test_callback_passed_to_fit(df):
    dls = plain_dls(df)
    learn = Learner(dls, tiny_model(dls.c), loss_func=nn.CrossEntropyLoss())
    seen = []
    class Spy(Callback):
        order = 0
        def before_batch(self):
            if self.training: seen.append(self.yb[0].tolist())
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[PKSamplerCallback(P=2, K=2, seed=1), Spy()])
    assert isinstance(learn.dls.train, PKDataLoader) and len(seen) == len(learn.dls.train) > 0
    for b in seen: assert_pk(b, 2, 2)

# ---------------------------------------------------------------- preload=True: batches sliced from memory

def test_preload_same_batches_as_item_route(df):
    "Without augmentation the in-memory route gives the item route's batches: same images, targets and order"
    kw = dict(size=(24, 16), P=4, K=2, bs_valid=8, seed=3, pad=0, flip_p=0., erase_p=0.)
    a, b = ReidDataLoaders.from_df(df, **kw), ReidDataLoaders.from_df(df, preload=True, **kw)
    assert getattr(b.train.dataset, 'preloaded', None) is not None and getattr(a.train.dataset, 'preloaded', None) is None
    assert len(a.train) == len(b.train) and len(a.valid) == len(b.valid)
    for dl_a, dl_b in ((a.train, b.train), (a.valid, b.valid)):
        for ba, bb in zip(dl_a, dl_b):
            assert len(ba) == len(bb) == 4
            assert type(bb[0]) is TensorImage and bb[0].dtype == torch.float32 and bb[0].shape == ba[0].shape
            assert torch.allclose(ba[0], bb[0], atol=1e-6)
            for ya, yb in zip(ba[1:], bb[1:]): assert torch.equal(ya.long(), yb.long())

def test_preload_augments_per_image_and_exports_small(df, tmp_path):
    dls = ReidDataLoaders.from_df(df, size=32, P=4, K=2, bs_valid=8, seed=0, pad=4, flip_p=.5, preload=True, path=tmp_path)
    raw = dls.train.dataset.preloaded[0]
    xb, y = dls.train.one_batch()[:2]
    assert xb.shape == (8, 3, 32, 32) and len(set(y.tolist())) == 4
    # validation batches are the stored images, normalised; training batches differ from them (flip / crop)
    from fastai.vision.core import imagenet_stats
    m, sd = (torch.tensor(v)[None, :, None, None] for v in imagenet_stats)
    vb = dls.valid.one_batch()[0]
    assert torch.allclose(vb, (dls.valid.dataset.preloaded[0][:8].float() / 255 - m) / sd, atol=1e-5)
    stored = (raw.float() / 255 - m) / sd
    assert not all(any(torch.allclose(xb[i], s_, atol=1e-5) for s_ in stored) for i in range(8))
    # export keeps neither items nor the preloaded images
    learn = Learner(dls, tiny_model(dls.n_ids), loss_func=reid_loss, splitter=two_groups)
    learn.export('export.pkl')
    assert (tmp_path / 'export.pkl').stat().st_size < 200_000

def test_preload_names_bad_file(df, tmp_path):
    bad = tmp_path / 'broken.jpg'; bad.write_bytes(b'\xff\xd8 not really a jpeg')
    d = df.copy(); d.loc[d.index[d.split == 'train'][0], 'path'] = str(bad)
    with pytest.raises(OSError, match='broken.jpg'): ReidDataLoaders.from_df(d, size=16, P=4, K=2, preload=True)

def test_batch_flip_pad_crop_windows():
    "Each output image is a window of its own zero-padded input, at its own offset"
    torch.manual_seed(0)
    x = TensorImage(torch.rand(16, 3, 8, 8) + 1)                      # no zeros inside an image
    out = BatchFlipPadCrop(pad=3, flip_p=0.)(x, split_idx=0)
    offsets = set()
    for i in range(16):
        xp = F.pad(x[i], (3, 3, 3, 3))
        hits = [(dy, dx) for dy in range(7) for dx in range(7) if torch.equal(xp[:, dy:dy + 8, dx:dx + 8], out[i])]
        assert len(hits) == 1; offsets.add(hits[0])
    assert len(offsets) > 4
    flipped = BatchFlipPadCrop(pad=0, flip_p=.5)(x, split_idx=0)
    n_flip = sum(torch.equal(flipped[i], x[i].flip(-1)) for i in range(16))
    assert 0 < n_flip < 16

# ---------------------------------------------------------------- camera-aware P x K batches

def test_camera_aware_pk_batches():
    "With cameras: exact P x K batches, positives over the id's cameras, ids of a batch sharing a camera"
    rng = np.random.default_rng(0)
    ids, cams = [], []
    for pid in range(40):
        own = rng.choice(10, size=int(rng.integers(2, 5)), replace=False)
        for j in range(8): ids.append(pid); cams.append(int(own[j % len(own)]))
    out = pk_sample(ids, 6, 4, 20, random.Random(0), cams=cams)
    assert len(out) == 20 * 24
    shared = 0
    for b in range(20):
        idx = out[b * 24:(b + 1) * 24]
        assert_pk([ids[i] for i in idx], 6, 4)
        for k in range(6):
            grp = idx[k * 4:(k + 1) * 4]
            n_cams = len({c for i, c in enumerate(cams) if ids[i] == ids[grp[0]]})
            assert len({cams[i] for i in grp}) == min(4, n_cams)      # as many cameras as the id has (up to K)
        first_cams = {cams[i] for i, l in enumerate(ids) if l == ids[idx[0]]}
        shared += all(first_cams & {cams[i] for i, l in enumerate(ids) if l == ids[j]} for j in idx)
    assert shared >= 15                                                 # most batches: every id shares a camera with the first
    assert out == pk_sample(ids, 6, 4, 20, random.Random(0), cams=cams)  # deterministic for the rng

def test_camera_aware_loader(df):
    dls = ReidDataLoaders.from_df(df, size=16, P=4, K=2, seed=0, camera_aware=True)
    assert dls.train.cams == df.loc[df.split == 'train', 'camid'].tolist()
    assert dls.train.new().cams == dls.train.cams
    idxs = list(dls.train.get_idxs())
    assert len(idxs) == len(dls.train) * 8
    assert_pk([dls.train.ids[i] for i in idxs[:8]], 4, 2)


def test_random_zoom_and_erasing_settings(df):
    "ANet's random zoom (fastai's per-image `Zoom`) and the random-erasing settings reach the training loader"
    d = ReidDataLoaders.from_df(df, size=32, P=4, K=2, bs_valid=8, seed=0, pad=0, zoom_p=0.5, max_zoom=1.3,
                                erase_p=0.25, erase_sh=0.2, erase_min_aspect=0.5, erase_mode='zero')
    names = [type(t).__name__ for t in d.train.after_batch.fs]
    assert 'RandomZoom' in names and 'PadRandomCrop' not in [type(t).__name__ for t in d.train.after_item.fs]
    er = next(t for t in d.train.after_batch.fs if isinstance(t, PerImageRandomErasing))
    assert (er.p, er.sh, er.min_aspect, er.mode) == (0.25, 0.2, 0.5, 'zero')
    xb = d.train.one_batch()[0]
    assert xb.shape == (8, 3, 32, 32)
    zoom = next(t for t in d.train.after_batch.fs if type(t).__name__ == 'RandomZoom')
    x = TensorImage(torch.rand(16, 3, 16, 16))   # p = 0.5 per image: all 16 left alone once in 65536
    assert torch.equal(zoom(x, split_idx=1), x) and not torch.allclose(zoom(x, split_idx=0), x)   # training only
    assert 'RandomZoom' not in [type(t).__name__ for t in ReidDataLoaders.from_df(df, size=32, P=4, K=2, seed=0).train.after_batch.fs]
    with pytest.raises(ValueError, match='zoom_p'): reid_tfms(zoom_p=2.)

def test_from_df_and_reid_tfms_defaults_are_the_configs():
    import inspect
    from fastreid_vehicle.config import DataConfig
    from fastreid_vehicle.data import reid_tfms
    names = ('size', 'P', 'K', 'camera_aware', 'pad', 'flip_p', 'erase_p', 'erase_sl', 'erase_sh', 'erase_min_aspect',
             'erase_mode', 'zoom_p', 'max_zoom', 'bs_valid', 'attrs')
    for fn in (ReidDataLoaders.from_df, reid_tfms):
        ps = inspect.signature(fn).parameters
        for n in names:
            if n in ps: assert ps[n].default == getattr(DataConfig, n), (fn.__name__, n)
    assert [type(t).__name__ for t in sum(reid_tfms(), [])] == ['Resize', 'FlipItem', 'PadRandomCrop', 'Normalize']  # erase_p 0
