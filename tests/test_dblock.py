"""One DataBlock route: `reid_dblock(df).dataloaders(df)`, and `ReidDataLoaders.from_df / from_csv / from_folder /
from_dblock` built on it; identities of any label (text included), mapped to integers once."""
import re, shutil, warnings
from collections import Counter
from pathlib import Path

import numpy as np, pandas as pd, pytest, torch
from fastai.data.all import DataBlock, CategoryBlock, ColReader, RandomSplitter
from fastai.vision.data import ImageBlock
from fastai.learner import load_learner

from fastreid_vehicle.data import *
from fastreid_vehicle.readers import load_custom, load_folder, DatasetFormatError
from fastreid_vehicle.evaluation import evaluate_features, evaluate_learner
from fastreid_vehicle.learner import reid_learner

torch.set_num_threads(1)
SMALL = dict(size=32, P=4, K=2, bs_valid=32, seed=0, camera_aware=False)

def pk_ok(y_id, P, K):
    c = Counter(y_id.tolist())
    return len(c) == P and set(c.values()) == {K}

def per_vehicle_folder(df, dest, name=lambda p: f'car_{p}'):
    "The images of `df` copied to dest/<split>/<name(pid)>/shot_<VeRi file name> (a name not like VeRi's)"
    for r in df.itertuples():
        d = Path(dest)/r.split/name(r.pid)/f'shot_{Path(r.path).name}'
        d.parent.mkdir(parents=True, exist_ok=True); shutil.copy(r.path, d)
    return Path(dest)

def fit_one(dls, tmp_path=None):
    "A BoT learner on a from-scratch resnet18, one short epoch; returns the learner"
    learn = reid_learner(dls, 'bot', backbone='resnet18', pretrained=False, **({'path': tmp_path} if tmp_path else {}))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return learn

@pytest.fixture(scope='module')
def cars(tiny_veri_df, tmp_path_factory):
    "The tiny benchmark as a folder per vehicle with text identities ('car_12')"
    return per_vehicle_folder(tiny_veri_df, tmp_path_factory.mktemp('cars'))

# ------------------------------------------------------------------------------------------------ the DataBlock route
def test_dblock_dataloaders_are_reid_dataloaders(tiny_veri_df):
    dblock = reid_dblock(tiny_veri_df, size=32)
    assert isinstance(dblock, ReidDataBlock) and isinstance(dblock, DataBlock)
    dls = dblock.dataloaders(tiny_veri_df, P=4, K=2, bs_valid=32, seed=0)
    assert isinstance(dls, ReidDataLoaders) and isinstance(dls.train, PKDataLoader)
    train = tiny_veri_df[tiny_veri_df.split == 'train']
    assert dls.n_ids == train.pid.nunique() and dls.id_vocab == sorted(train.pid.unique().tolist())
    assert set(dls.attr_classes) == {'color', 'type'} and all(v > 0 for v in dls.attr_classes.values())
    assert len(dls.train) == len(train) // 8
    for xb, y_id, *_ in dls.train: assert xb.shape == (8, 3, 32, 32) and pk_ok(y_id, 4, 2)
    v = dls.valid.items
    n_q = (tiny_veri_df.split == 'query').sum()
    assert v.split.tolist()[:n_q] == ['query'] * n_q and set(v.split[n_q:]) == {'gallery'}

def test_from_df_is_the_dblock_route(tiny_veri_df):
    "from_df and reid_dblock(...).dataloaders(...) give the same batches (no random augmentation, same seed)"
    aug = dict(size=32, pad=0, flip_p=0., erase_p=0.)
    a = ReidDataLoaders.from_df(tiny_veri_df, P=4, K=2, bs_valid=16, seed=3, **aug)
    b = reid_dblock(tiny_veri_df, **aug).dataloaders(tiny_veri_df, P=4, K=2, bs_valid=16, seed=3)
    for x, y in zip(a.train.one_batch(), b.train.one_batch()): assert torch.equal(x, y)
    for x, y in zip(a.valid.one_batch(), b.valid.one_batch()): assert torch.equal(x, y)
    assert (a.id_vocab, a.all_ids, a.attr_vocabs) == (b.id_vocab, b.all_ids, b.attr_vocabs)

def test_from_dblock(tiny_veri_df):
    dblock = reid_dblock(tiny_veri_df, size=32)
    dls = ReidDataLoaders.from_dblock(dblock, tiny_veri_df, P=4, K=2, bs_valid=16, path='somewhere')
    assert type(dls) is ReidDataLoaders and isinstance(dls.train, PKDataLoader) and str(dls.path) == 'somewhere'
    plain = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('path'), get_y=ColReader('pid'),
                      splitter=RandomSplitter(seed=0))
    with pytest.raises(TypeError, match='dblock must be a ReidDataBlock from `reid_dblock'):
        ReidDataLoaders.from_dblock(plain, tiny_veri_df)

def test_dataloaders_arguments(tiny_veri_df):
    dblock = reid_dblock(tiny_veri_df, size=32)
    with pytest.raises(TypeError, match=r"\['bs'\].*pass P, K and bs_valid"): dblock.dataloaders(tiny_veri_df, bs=64)
    with pytest.raises(ValueError, match="sampler must be 'pk' or 'random'"): dblock.dataloaders(tiny_veri_df, sampler='x')
    with pytest.raises(ValueError, match='P=40 identities per batch'): dblock.dataloaders(tiny_veri_df, P=40, K=2)
    with pytest.raises(ValueError, match="lacks the column"): dblock.dataloaders(tiny_veri_df.drop(columns='camid'))
    rnd = dblock.dataloaders(tiny_veri_df, P=4, K=2, sampler='random')
    assert type(rnd.train) is ReidDL and rnd.train.bs == 8 and isinstance(rnd, ReidDataLoaders)

def test_dblock_route_preload(tiny_veri_df):
    "preload on the DataBlock route: flip and crop move to the batch; batches match the item route without them"
    aug = dict(size=(24, 16), pad=0, flip_p=0., erase_p=0.)
    kw = dict(P=4, K=2, bs_valid=16, seed=1)
    a = reid_dblock(tiny_veri_df, **aug).dataloaders(tiny_veri_df, **kw)
    b = reid_dblock(tiny_veri_df, **aug).dataloaders(tiny_veri_df, preload=True, **kw)
    assert getattr(b.train.dataset, 'preloaded', None) is not None
    xa, xb = a.train.one_batch()[0], b.train.one_batch()[0]
    assert xa.shape == xb.shape == (8, 3, 24, 16) and (xa - xb).abs().max() < 0.05   # same images, one rounding apart
    names = [type(t).__name__ for t in b.train.after_batch.fs]
    assert 'BatchFlipPadCrop' in names and 'PadRandomCrop' not in [type(t).__name__ for t in b.train.after_item.fs]

def test_learner_trains_on_the_dblock_route(tiny_veri_df, tmp_path):
    dls = reid_dblock(tiny_veri_df, size=32).dataloaders(tiny_veri_df, P=4, K=2, bs_valid=32, seed=0, path=tmp_path)
    learn = fit_one(dls, tmp_path)
    assert learn.model.head.classifier.out_features == dls.n_ids
    assert np.isfinite(learn.recorder.losses[-1].item())
    with learn.no_bar(): learn.export('export.pkl')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        back = load_learner(tmp_path/'export.pkl')
    assert (back.dls.id_vocab, back.dls.all_ids, back.dls.attr_vocabs) == (dls.id_vocab, dls.all_ids, dls.attr_vocabs)

# ------------------------------------------------------------------------------------------------ text identities
def test_text_identities_one_vocab(tiny_veri_df):
    df = tiny_veri_df.assign(pid='car_' + tiny_veri_df.pid.astype(str))
    dls = ReidDataLoaders.from_df(df, **SMALL)
    train = df[df.split == 'train']
    assert dls.id_vocab == sorted(train.pid.unique()) and dls.n_ids == train.pid.nunique()
    assert dls.all_ids[:dls.n_ids] == dls.id_vocab and set(dls.all_ids) == set(df.pid)
    _, y_id, *_ = dls.train.one_batch()
    assert y_id.dtype == torch.long and pk_ok(y_id, 4, 2) and int(y_id.max()) < dls.n_ids
    ys = torch.cat([yb for _, yb, *_ in dls.valid]).tolist()
    assert [dls.all_ids[i] for i in ys] == dls.valid.items.pid.tolist()      # the codes decode to the identities
    assert str(dls.valid.decode_batch(dls.valid.one_batch(), max_n=1)[0][1]).startswith('id car_')

def test_text_identities_evaluate_like_integers(tiny_veri_df):
    "evaluate_features compares identities only: text ids give the integer ids' numbers"
    items = tiny_veri_df[tiny_veri_df.split != 'train'].reset_index(drop=True)
    feats = torch.randn(len(items), 8, generator=torch.Generator().manual_seed(0))
    a = evaluate_features(items, feats, protocol='plain')
    b = evaluate_features(items.assign(pid='v' + items.pid.astype(str)), feats, protocol='plain')
    assert a.as_dict() == b.as_dict()

def test_learner_on_text_identities_trains_and_evaluates(tiny_veri_df):
    df = tiny_veri_df.assign(pid='car_' + tiny_veri_df.pid.astype(str))
    learn = fit_one(ReidDataLoaders.from_df(df, **SMALL))
    names = learn.recorder.metric_names
    assert 'mAP' in names and learn.recorder.values[-1][names.index('mAP') - 1] >= 0   # metrics on text ids
    r = evaluate_learner(learn)
    assert 0 <= r.result.mAP <= 1

# ------------------------------------------------------------------------------------------------ from_folder
def test_from_folder_per_vehicle(cars, tiny_veri_df):
    dls = ReidDataLoaders.from_folder(cars, cams=r'_c(\d+)_', **SMALL)
    assert isinstance(dls, ReidDataLoaders) and isinstance(dls.train, PKDataLoader) and dls.path == cars
    train = tiny_veri_df[tiny_veri_df.split == 'train']
    assert dls.id_vocab == sorted(f'car_{p}' for p in train.pid.unique())
    v = dls.valid.items
    assert sorted(v.camid) == sorted(tiny_veri_df[tiny_veri_df.split != 'train'].camid)   # cameras from the names
    assert sorted(Counter(v.split).items()) == sorted(Counter(tiny_veri_df[tiny_veri_df.split != 'train'].split).items())
    fit_one(dls)

def test_from_folder_cameras(cars):
    df = load_folder(cars, strict=True)                                       # no camera known: query 0, gallery 1
    assert set(df[df.split == 'gallery'].camid) == {1} and set(df[df.split != 'gallery'].camid) == {0}
    by_fn = load_folder(cars, cams=lambda p: int(re.search(r'_c(\d+)_', Path(p).name)[1]))
    assert by_fn.camid.tolist() == load_folder(cars, cams=r'_c(\d+)_').camid.tolist()
    with pytest.raises(DatasetFormatError, match=r"does not match the camera pattern cams='_x\(\\\\d\+\)'"):
        load_folder(cars, cams=r'_x(\d+)')
    with pytest.raises(DatasetFormatError, match=r"camera 'a' \(from the cams function\) is not an integer"):
        load_folder(cars, cams=lambda p: 'a')

def test_from_folder_veri_names(tmp_path):
    "VeRi-named images (the synthetic benchmark's image_train/ image_query/ image_test/): id and camera from the names"
    from fastreid_vehicle.synthetic import synthesize_veri
    from fastreid_vehicle.readers import load_veri776, parse_veri_name
    root = synthesize_veri(tmp_path/'veri', preset='tiny', seed=1, n_workers=1)
    dls = ReidDataLoaders.from_folder(root, **SMALL)
    ref = load_veri776(root)
    assert dls.id_vocab == sorted(ref[ref.split == 'train'].pid.unique().tolist())
    v = dls.valid.items
    assert [parse_veri_name(p) for p in v.path] == list(zip(v.pid, v.camid))
    assert len(v) == (ref.split != 'train').sum()

def test_from_folder_named_split_folders(cars, tmp_path):
    other = tmp_path/'other'
    for src, dst in (('train', 'trn'), ('query', 'probe'), ('gallery', 'gal')): shutil.copytree(cars/src, other/dst)
    dls = ReidDataLoaders.from_folder(other, train='trn', query='probe', gallery='gal', **SMALL)
    assert dls.n_ids == len(list((cars/'train').iterdir()))

def test_from_folder_errors(tmp_path):
    d = tmp_path/'data'
    d.mkdir()
    with pytest.raises(DatasetFormatError, match=re.escape(f"{d/'train'}: missing train folder")):
        ReidDataLoaders.from_folder(d)                                        # an empty folder
    for s in ('train', 'query', 'gallery'): (d/s).mkdir()
    with pytest.raises(DatasetFormatError, match=re.escape(f"{d/'train'}: no images found")): ReidDataLoaders.from_folder(d)
    img = d/'train'/'photo.jpg'
    img.write_bytes(b'')                                                      # images, but no identity folders
    with pytest.raises(DatasetFormatError, match=re.escape(f"{img}: image name is not like VeRi's") + '.*not in a vehicle folder'):
        ReidDataLoaders.from_folder(d)
    shutil.rmtree(d/'query')
    with pytest.raises(DatasetFormatError, match=re.escape(f"{d/'query'}: missing query folder")):
        ReidDataLoaders.from_folder(d)
    with pytest.raises(DatasetFormatError, match='not a folder'): ReidDataLoaders.from_folder(tmp_path/'none')

# ------------------------------------------------------------------------------------------------ from_csv
def test_from_csv(tiny_veri_df, tmp_path):
    d = tmp_path/'ds'
    (d/'imgs').mkdir(parents=True)
    for p in tiny_veri_df.path: shutil.copy(p, d/'imgs'/Path(p).name)
    tab = tiny_veri_df.assign(path=['imgs/' + Path(p).name for p in tiny_veri_df.path],
                              pid='car_' + tiny_veri_df.pid.astype(str))
    tab.to_csv(d/'labels.csv', index=False)
    dls = ReidDataLoaders.from_csv(d, **SMALL)                                # csv_fname='labels.csv', like fastai's
    assert isinstance(dls, ReidDataLoaders) and dls.path == d and dls.id_vocab[0].startswith('car_')
    assert dls.valid.items.path.iloc[0].startswith(str(d/'imgs'))
    (d/'lists').mkdir(); tab.assign(path=[Path(p).name for p in tab.path]).to_csv(d/'lists'/'t.csv', index=False)
    assert ReidDataLoaders.from_csv(d, 'lists/t.csv', folder='imgs', **SMALL).n_ids == dls.n_ids

def test_from_csv_errors(tiny_veri_df, tmp_path):
    tiny_veri_df.drop(columns='camid').to_csv(tmp_path/'a.csv', index=False)
    with pytest.raises(DatasetFormatError, match=re.escape(f"{tmp_path/'a.csv'}: missing column(s) camid")):
        ReidDataLoaders.from_csv(tmp_path, 'a.csv')
    tab = tiny_veri_df.copy()
    tab['pid'] = tab['pid'].astype(object); tab.loc[3, 'pid'] = ''
    tab.to_csv(tmp_path/'b.csv', index=False)
    with pytest.raises(DatasetFormatError, match=re.escape(f"{tmp_path/'b.csv'}, line 5: column 'pid' is empty")):
        ReidDataLoaders.from_csv(tmp_path, 'b.csv')
    with pytest.raises(DatasetFormatError, match='no such CSV file'): ReidDataLoaders.from_csv(tmp_path, 'none.csv')

# ------------------------------------------------------------------------------------------------ readers
def test_load_custom_text_identities(tmp_path):
    for n in 'abcd': (tmp_path/f'{n}.jpg').write_bytes(b'')
    (tmp_path/'t.csv').write_text('path,pid,camid,split\na.jpg,car_3,1,train\nb.jpg,car_3,2,train\n'
                                  'c.jpg, van_12 ,1,query\nd.jpg,van_12,2,gallery\n')
    df = load_custom(tmp_path/'t.csv')
    assert df.pid.tolist() == ['car_3', 'car_3', 'van_12', 'van_12'] and df.pid.dtype == object
    (tmp_path/'u.csv').write_text('path,pid,camid,split\na.jpg,0012,1,train\nb.jpg,12,2,train\n')
    assert load_custom(tmp_path/'u.csv').pid.tolist() == [12, 12]             # integers when every id is one
    assert load_custom(df).pid.tolist() == df.pid.tolist()                    # a reader's table reads back
