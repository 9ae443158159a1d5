"Bad images and bad list files: `open_rgb` / `check_images` (images module), named decode errors in the data pipeline."
import re, shutil, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from fastreid_vehicle.images import open_rgb, to_rgb8, check_images, find_bad_images, BadImagesError, ImageDecodeError
from fastreid_vehicle.readers import load_dataset, load_veri776, load_custom, DatasetFormatError
from fastreid_vehicle.data import ReidDataLoaders, ReidImage, preload_images
from fastreid_vehicle.example_trees import make_veri776_tree

def _truncate(p, keep=300): Path(p).write_bytes(Path(p).read_bytes()[:keep])

@pytest.fixture
def df(tiny_veri_df, tmp_path):
    "A private copy of the tiny benchmark's images (the tests break some of them)"
    src = Path(tiny_veri_df.path[0]).parent.parent
    dst = tmp_path/'veri'; shutil.copytree(src, dst)
    return load_veri776(dst)

def test_open_rgb_names_file_and_reason(tmp_path):
    good = tmp_path/'good.jpg'; Image.new('RGB', (40, 30), (10, 200, 30)).save(good)
    (tmp_path/'trunc.jpg').write_bytes(good.read_bytes()[:250])
    (tmp_path/'noise.jpg').write_bytes(np.random.default_rng(1).bytes(4096))
    (tmp_path/'empty.jpg').write_bytes(b'')
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path/'float.tif')
    for name, reason in [('trunc', 'truncated'), ('noise', 'not an image'), ('empty', 'empty file'), ('gone', 'missing'),
                         ('float', 'unsupported mode')]:
        p = next(iter(tmp_path.glob(f'{name}.*')), tmp_path/f'{name}.jpg')
        with pytest.raises(ImageDecodeError, match=re.escape(f'{p}: {reason}')) as e: open_rgb(p)
        assert e.value.path == str(p) and e.value.reason == reason
    assert open_rgb(good).mode == 'RGB' and open_rgb(good).size == (40, 30)

def test_sixteen_bit_png_named_jpg_is_scaled_not_clipped(tmp_path):
    a = np.linspace(0, 65535, 64, dtype=np.float64).round().astype(np.uint16).reshape(8, 8)
    p = tmp_path/'deep.jpg'; Image.fromarray(a).save(p, format='PNG')
    assert Image.open(p).mode.startswith('I;16')
    got = np.asarray(open_rgb(p))
    want = np.round(a / 257).astype(np.uint8)
    assert (got == want[..., None]).all() and got.max() == 255 and got.min() == 0
    assert np.asarray(Image.open(p).convert('RGB')).mean() > want.mean() + 50   # what PIL's own conversion does
    # in the pipeline too (ReidImage), and in the preloaded route
    assert (np.asarray(ReidImage.create(p))[..., 0] == want).all()
    assert (preload_images([p], (8, 8))[0, 0].numpy() == want).all()
    big = Image.fromarray(np.full((2, 2), 70000, np.int32), 'I')
    with pytest.raises(ImageDecodeError, match='unsupported mode.*outside the 16-bit range'): to_rgb8(big, 'x.png')

def test_check_images_raise_drop_and_report(df, tmp_path):
    gal = df[df.split == 'gallery'].path.iloc[0]; trn = df[df.split == 'train'].path.iloc[3]
    _truncate(gal); Path(trn).write_bytes(b'\x00garbage' * 50)
    with pytest.raises(BadImagesError, match=r'(?s)2 of \d+ images cannot be used.*not an image.*truncated') as e:
        check_images(df, progress=False)
    assert set(e.value.report.path) == {gal, trn}
    with pytest.warns(UserWarning, match='dropped 2 rows'):
        out = check_images(df, 'drop', report=tmp_path/'r.csv', progress=False)
    assert len(out) == len(df) - 2 and not set(out.path) & {gal, trn} and out.attrs == df.attrs
    rep = pd.read_csv(tmp_path/'r.csv')
    assert dict(zip(rep.path, rep.reason)) == {gal: 'truncated', trn: 'not an image'}
    assert len(find_bad_images(out.path, progress=False)) == 0

def test_from_df_and_load_dataset_check(df, tmp_path):
    gal = df[df.split == 'gallery'].path.iloc[1]; _truncate(gal)
    with pytest.raises(BadImagesError, match=re.escape(gal)):
        ReidDataLoaders.from_df(df, size=32, P=4, K=4, check='raise', check_report=tmp_path/'bad.csv')
    assert pd.read_csv(tmp_path/'bad.csv').path.tolist() == [gal]
    with pytest.warns(UserWarning, match='dropped 1 rows'):
        dls = ReidDataLoaders.from_df(df, size=32, P=4, K=4, check='drop')
    assert gal not in set(dls.valid.items.path) and len(dls.valid.items) == (df.split != 'train').sum() - 1
    root = Path(df.path[0]).parent.parent
    with pytest.raises(BadImagesError): load_dataset('veri776', root, check=True)
    with pytest.raises(ValueError, match="check must be"): load_dataset('veri776', root, check='maybe')

@pytest.mark.parametrize('preload', [False, True])
def test_decode_error_in_training_names_the_file(df, preload):
    trn = df[df.split == 'train'].path.iloc[0]; _truncate(trn)
    def run():
        dls = ReidDataLoaders.from_df(df, size=32, P=4, K=4, seed=0, preload=preload)
        for _ in dls.train: pass
    with pytest.raises(ImageDecodeError, match=re.escape(f'{trn}: truncated')): run()

def test_utf16_list_file(tmp_path):
    veri = make_veri776_tree(tmp_path/'VeRi', n_train_ids=3, n_test_ids=2, image='empty')
    fn = veri['root']/'name_train.txt'
    fn.write_text(fn.read_text(), encoding='utf-16')
    with pytest.raises(DatasetFormatError, match=re.escape(f'{fn}: is UTF-16')): load_veri776(veri['root'])
    csv = tmp_path/'own.csv'; csv.write_text('path,pid,camid,split\na.jpg,1,1,train\n', encoding='utf-16-le')
    with pytest.raises(DatasetFormatError, match=re.escape(f'{csv}, line 1: holds NUL bytes')): load_custom(csv)

def test_train_stops_before_training_and_can_drop(df, tmp_path):
    from fastreid_vehicle.pipeline import train
    gal = df[df.split == 'gallery'].path.iloc[2]; _truncate(gal)
    root, out = Path(df.path[0]).parent.parent, tmp_path/'run'
    kw = dict(dataset='veri776', root=root, out=out, size=32, P=4, K=4, epochs=1, progress=False, threads=1)
    with pytest.raises(BadImagesError, match=re.escape(f'{gal}: truncated')): train(**kw)
    assert pd.read_csv(out/'image_check.csv').path.tolist() == [gal] and not (out/'history.csv').exists()
    with pytest.warns(UserWarning, match='dropped 1 rows'): res = train(**kw, image_check='drop')   # same folder: nothing was trained
    assert res['num_queries'] > 0 and (out/'model.safetensors').exists()

def test_find_bad_images_screens_with_verify_image(tmp_path, monkeypatch):
    import fastreid_vehicle.images as images
    good = tmp_path/'good.jpg'; Image.new('RGB', (16, 12), (1, 2, 3)).save(good)
    deep = tmp_path/'deep.png'; Image.fromarray(np.full((4, 4), 60000, np.uint16)).save(deep)
    (tmp_path/'bad.jpg').write_bytes(good.read_bytes()[:200])
    decoded = []
    real = images.open_rgb
    monkeypatch.setattr(images, 'open_rgb', lambda p: decoded.append(Path(p).name) or real(p))
    rep = find_bad_images([good, deep, tmp_path/'bad.jpg'], n_workers=1, progress=False)
    assert rep.to_dict('list') == {'path': [str(tmp_path/'bad.jpg')], 'reason': ['truncated'], 'detail': rep.detail.tolist()}
    assert sorted(decoded) == ['bad.jpg', 'deep.png']   # a good 8-bit file passes fastai's verify_image alone


# ---------------------------------------------------------------- checks moved from nbs/00a_images.ipynb
from fastreid_vehicle.images import check_option, image_table, gallery_images, skipped_note


def _broken_files(imgs):
    imgs.mkdir()
    Image.new('RGB', (32, 24), (200, 30, 30)).save(imgs/'good.jpg')
    (imgs/'truncated.jpg').write_bytes((imgs/'good.jpg').read_bytes()[:300])
    (imgs/'random.jpg').write_bytes(np.random.default_rng(0).bytes(2000))
    (imgs/'empty.jpg').write_bytes(b'')
    Image.fromarray(np.full((8, 8), 60000, np.uint16)).save(imgs/'deep.jpg', format='PNG')
    Image.fromarray(np.ones((8, 8), np.float32)).save(imgs/'float.tif')
    return imgs


def test_images_notebook_examples(tmp_path):
    imgs = _broken_files(tmp_path/'imgs')
    for name, reason in [('truncated', 'truncated'), ('random', 'not an image'), ('empty', 'empty file'), ('missing', 'missing')]:
        with pytest.raises(ImageDecodeError, match=re.escape(f'{name}.jpg: {reason}')): open_rgb(imgs/f'{name}.jpg')
    with pytest.raises(ImageDecodeError, match=re.escape('float.tif: unsupported mode (mode F')): open_rgb(imgs/'float.tif')
    deep = np.asarray(open_rgb(imgs/'deep.jpg'))
    assert deep.shape == (8, 8, 3) and int(deep.max()) == round(60000 / 257)
    ex = Image.Exif(); ex[0x0112] = 6
    Image.new('RGB', (40, 20), (10, 200, 10)).save(tmp_path/'portrait.jpg', exif=ex)
    assert Image.open(tmp_path/'portrait.jpg').size == (40, 20) and open_rgb(tmp_path/'portrait.jpg').size == (20, 40)
    bad_df = pd.DataFrame({'path': [str(p) for p in sorted(imgs.iterdir())], 'pid': 1, 'camid': 1, 'split': 'train'})
    with pytest.raises(BadImagesError, match='4 of 6 images cannot be used'): check_images(bad_df, progress=False)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        kept = check_images(bad_df, on_bad='drop', report=tmp_path/'bad.csv', progress=False)
    assert sorted(Path(p).name for p in kept.path) == ['deep.jpg', 'good.jpg']
    rep = pd.read_csv(tmp_path/'bad.csv')
    assert dict(zip(rep.path.map(lambda p: Path(p).name), rep.reason)) == \
        {'empty.jpg': 'empty file', 'float.tif': 'unsupported mode', 'random.jpg': 'not an image', 'truncated.jpg': 'truncated'}
    assert [check_option(c) for c in (None, False, 'off', True, 'raise', 'drop')] == [None, None, None, 'raise', 'raise', 'drop']
    with pytest.raises(Exception, match='check must be'): check_option('maybe')
    (imgs/'sub').mkdir(); Image.new('RGB', (8, 8)).save(imgs/'sub'/'x.png'); (imgs/'notes.txt').write_text('not an image')
    assert [Path(p).name for p in image_table(imgs).path][-2:] == ['x.png', 'truncated.jpg']   # sorted: sub/ before t
    assert 'notes.txt' not in {Path(p).name for p in image_table(imgs).path}
    pd.DataFrame({'path': ['good.jpg', 'sub/x.png']}).to_csv(imgs/'list.csv', index=False)
    assert image_table(imgs/'list.csv').path.tolist() == [str(imgs/'good.jpg'), str(imgs/'sub'/'x.png')]
    pd.DataFrame({'path': ['gone.jpg']}).to_csv(tmp_path/'gone.csv', index=False)
    with pytest.raises(Exception, match=re.escape('gone.csv: 1 image(s) not found')): image_table(tmp_path/'gone.csv')
    with pytest.raises(Exception, match='gallery must be a folder'): image_table(tmp_path/'nowhere')
    gal = tmp_path/'gal'; gal.mkdir()
    for n in ('a.jpg', 'b.jpg'): Image.new('RGB', (8, 8)).save(gal/n)
    (gal/'broken.jpg').write_bytes((gal/'a.jpg').read_bytes()[:30])
    with pytest.raises(Exception, match='--skip-bad-images'): gallery_images(gal)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        assert [Path(p).name for p in gallery_images(gal, skip_bad=True).path] == ['a.jpg', 'b.jpg']
    assert skipped_note(dict(num_skipped=3)) == '; 3 queries left out (no true match in the gallery)'
