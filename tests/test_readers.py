"""Tests of `fastreid_vehicle.readers` on tiny trees in each official format (`fastreid_vehicle.example_trees`)."""
import os, re, shutil, warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np, pandas as pd, pytest
from hypothesis import given, settings, strategies as st

from fastreid_vehicle.readers import *
from fastreid_vehicle import readers
from fastreid_vehicle.example_trees import make_veri776_tree, make_vehicleid_tree, make_veriwild_tree, make_vric_tree


def _err(fn, *parts):
    "A `pytest.raises` context for a DatasetFormatError whose message contains str(fn) and every part"
    return pytest.raises(DatasetFormatError, match='(?s)' + '.*'.join(re.escape(str(p)) for p in (fn, *parts)))

def _check_schema(df, model=False):
    cols = ['path', 'pid', 'camid', 'split', 'color', 'type'] + (['model'] if model else [])
    assert list(df.columns)[:len(cols)] == cols
    assert df['pid'].dtype == 'int64' and df['camid'].dtype == 'int64'
    for c in cols[4:]: assert str(df[c].dtype) == 'Int64'
    assert set(df['split']) <= {'train', 'query', 'gallery'}
    assert all(os.path.isabs(p) for p in df['path'])
    assert {'dataset', 'color_names', 'type_names'} <= set(df.attrs)
    if model: assert 'model_names' in df.attrs
    # rows come train, then query, then gallery
    order = df['split'].map({'train': 0, 'query': 1, 'gallery': 2}).to_numpy()
    assert (np.diff(order) >= 0).all()

def _rewrite(fn, f):
    "Rewrite text file `fn` through `f(list of lines) -> list of lines`"
    fn = Path(fn)
    fn.write_text('\n'.join(f(fn.read_text().splitlines())) + '\n')

# ------------------------------------------------------------------------------------------------------------- VeRi-776
@pytest.fixture
def veri(tmp_path): return make_veri776_tree(tmp_path/'VeRi', n_train_ids=5, n_test_ids=3, image='empty')

def test_veri776_rows(veri):
    df = load_veri776(veri['root'])
    _check_schema(df)
    assert df.attrs == dict(dataset='veri776', color_names=VERI_COLORS, type_names=VERI_TYPES)
    for split in ('train', 'query', 'gallery'):
        d, exp = df[df.split == split], veri[split]
        assert [Path(p).name for p in d.path] == [r['name'] for r in exp]       # list order
        assert list(d.pid) == [r['pid'] for r in exp] and list(d.camid) == [r['camid'] for r in exp]
        assert list(d.color) == [r['color'] for r in exp] and list(d.type) == [r['type'] for r in exp]
    folders = {'train': 'image_train', 'query': 'image_query', 'gallery': 'image_test'}
    assert all(Path(p).parent == veri['root']/folders[s] for p, s in zip(df.path, df.split))
    s = summarize(df)
    assert s.loc['train', 'ids'] == 5 and s.loc['gallery', 'images'] == len(veri['gallery'])
    assert s.loc['query', 'cameras'] == 2 and s.loc['train', 'with_type'] == len(veri['train'])

def test_veri776_quirks(veri):
    "gb2312 XML with Chinese text (ElementTree itself refuses it), the typeID-0 erratum, CRLF lists"
    raw = (veri['root']/'train_label.xml').read_bytes()
    assert 'gb2312' in raw[:60].decode() and '车辆'.encode('gb2312') in raw
    with pytest.raises(ValueError): ET.parse(veri['root']/'train_label.xml')
    assert b'\r\n' in (veri['root']/'name_test.txt').read_bytes()
    lab = read_veri_xml(veri['root']/'train_label.xml')
    assert set(lab.pid[lab.type == 0]) == {3, 7, 41}
    df = load_veri776(veri['root'])
    assert set(df.type[df.pid.isin([3, 7, 41])]) == {2}
    assert df.type.notna().all() and df.color.notna().all()

def test_veri776_unlabelled_type_zero_is_na(veri):
    fn = veri['root']/'test_label.xml'
    r = next(r for r in veri['gallery'] if r['pid'] == 601)
    item = f'vehicleID="0601" cameraID="c001" colorID="{r["color"]}" typeID="{r["type"]}"'
    assert item.encode() in fn.read_bytes()
    fn.write_bytes(fn.read_bytes().replace(item.encode(), item.replace(f'typeID="{r["type"]}"', 'typeID="0"').encode()))
    with pytest.warns(UserWarning, match='typeID="0"'): df = load_veri776(veri['root'])
    na = df[df.type.isna()]
    assert len(na) > 0 and set(na.pid) == {601} and set(na.camid) == {1}

def test_veri776_without_labels(tmp_path):
    t = make_veri776_tree(tmp_path/'V', xml=False, name_tables=False, image='empty')
    with pytest.warns(UserWarning, match='label.xml not found'): df = load_veri776(t['root'])
    assert len(df) == len(t['train']) + len(t['query']) + len(t['gallery'])
    assert df.color.isna().all() and df.type.isna().all()
    assert df.attrs['color_names'] == VERI_COLORS

def test_veri776_name_tables(veri):
    (veri['root']/'list_type.txt').write_text(''.join(f'{v}\t{k}\n' for k, v in VERI_TYPES.items()))
    (veri['root']/'list_color.txt').write_text('1 light yellow\n2 orange\n3 green\n4 gray\n5 red\n6 blue\n7 white\n'
                                                '8 golden\n9 brown\n10 black\n')
    df = load_veri776(veri['root'])
    assert df.attrs['type_names'] == VERI_TYPES and df.attrs['color_names'][1] == 'light yellow'
    (veri['root']/'list_type.txt').write_text('this is not a table\n')
    with pytest.warns(UserWarning, match='built-in names'): df = load_veri776(veri['root'])
    assert df.attrs['type_names'] == VERI_TYPES

def test_veri776_lists_are_authority(veri):
    "Images on disk but not listed are ignored; listed images must exist"
    shutil.copy(veri['root']/'image_train'/veri['train'][0]['name'], veri['root']/'image_train'/'0999_c001_00000001_0.jpg')
    assert 999 not in set(load_veri776(veri['root']).pid)

def test_veri776_errors(veri, tmp_path):
    root = veri['root']
    with _err(tmp_path/'nowhere', 'not a folder', 'Expected layout'): load_veri776(tmp_path/'nowhere')
    (root/'image_test'/veri['gallery'][4]['name']).unlink()
    with _err(root/'name_test.txt', 'line 5', 'listed image', veri['gallery'][4]['name'], 'does not exist'):
        load_veri776(root)
    assert len(load_veri776(root, check_files=False)) == len(veri['train']) + len(veri['query']) + len(veri['gallery'])
    _rewrite(root/'name_train.txt', lambda ls: ls[:2] + ['car_0001.jpg'] + ls[2:])
    with _err(root/'name_train.txt', 'line 3', "'car_0001.jpg' is not a VeRi image name"): load_veri776(root)
    _rewrite(root/'name_train.txt', lambda ls: ls[:2] + ['image_train/' + ls[0]] + ls[3:])
    with _err(root/'name_train.txt', 'line 3', 'is not a VeRi image name'): load_veri776(root)
    _rewrite(root/'name_train.txt', lambda ls: ls[:2] + ls[3:] + [ls[0]])
    with _err(root/'name_train.txt', f'line {len(veri["train"]) + 1}', 'listed twice', 'line 1'): load_veri776(root)
    _rewrite(root/'name_train.txt', lambda ls: ls[:-1])
    (root/'name_query.txt').unlink()
    with _err(root/'name_query.txt', 'missing list file'): load_veri776(root)

def _xml_replace(fn, old, new):
    b = Path(fn).read_bytes()
    assert old.encode() in b
    Path(fn).write_bytes(b.replace(old.encode(), new.encode(), 1))

def test_veri776_xml_errors(veri):
    root, name = veri['root'], veri['train'][0]['name']
    fn = root/'train_label.xml'
    orig = fn.read_bytes()
    _xml_replace(fn, f'imageName="{name}" vehicleID="0003"', f'imageName="{name}" vehicleID="0004"')
    with _err(fn, name, 'vehicleID 4', 'name says 3'): load_veri776(root)
    fn.write_bytes(orig); _xml_replace(fn, 'colorID="4"', 'colorID="11"')
    with _err(fn, name, 'colorID=11', '1..10'): load_veri776(root)
    fn.write_bytes(orig); _xml_replace(fn, 'colorID="4"', 'colorID="red"')
    with _err(fn, name, "colorID 'red' is not an integer"): load_veri776(root)
    fn.write_bytes(orig); _xml_replace(fn, ' typeID="0"', '')
    with _err(fn, '<Item> number 1', 'lacks typeID'): load_veri776(root)
    fn.write_bytes(orig); _xml_replace(fn, '</Items>', '</Itemz>')
    with _err(fn, f'line {len(veri["train"]) + 4}', 'not well-formed XML'): load_veri776(root)
    fn.write_bytes('<?xml version="1.0" encoding="gb2312"?>\n<TrainingImages>\n</TrainingImages>\n'.encode('gb2312'))
    with _err(fn, 'no <Items><Item'): load_veri776(root)

def test_veri776_missing_items_warn(veri):
    fn = veri['root']/'test_label.xml'
    lines = fn.read_bytes().decode('gb2312').splitlines()
    fn.write_bytes('\n'.join(l for l in lines if veri['gallery'][0]['name'] not in l).encode('gb2312'))
    with pytest.warns(UserWarning, match='have no <Item>'): df = load_veri776(veri['root'])
    na = df[df.color.isna()]
    assert [Path(p).name for p in na.path] == [veri['gallery'][0]['name']] * 2   # the query copy and the gallery image

def test_veri776_lists_each_folder_once(veri, monkeypatch):
    "Existence checks list each image folder once instead of one stat per image"
    calls = []
    real = os.scandir
    monkeypatch.setattr(readers.os, 'scandir', lambda p: calls.append(os.fspath(p)) or real(p))
    load_veri776(veri['root'])
    assert sorted(Path(c).name for c in calls) == ['image_query', 'image_test', 'image_train']

# ------------------------------------------------------------------------------------------------------------ VehicleID
@pytest.fixture
def vid(tmp_path): return make_vehicleid_tree(tmp_path/'VehicleID_V1.0', n_train_ids=5, image='empty')

@pytest.mark.parametrize('size', [800, 1600, 2400])
def test_vehicleid_rows(vid, size):
    df = load_vehicleid(vid['root'], test_size=size)
    _check_schema(df, model=True)
    tr, te, exp = df[df.split == 'train'], df[df.split != 'train'], vid['test'][size]
    assert [Path(p).stem for p in tr.path] == [r['name'] for r in vid['train']]
    assert list(tr.pid) == [r['pid'] for r in vid['train']]
    assert sorted(Path(p).stem for p in te.path) == sorted(r['name'] for r in exp)
    name2pid = {r['name']: r['pid'] for r in exp}
    assert all(name2pid[Path(p).stem] == pid for p, pid in zip(te.path, te.pid))
    g, q = df[df.split == 'gallery'], df[df.split == 'query']
    assert sorted(g.pid) == sorted(set(name2pid.values()))                # exactly one gallery image per id
    single = {p for p in name2pid.values() if list(name2pid.values()).count(p) == 1}
    assert not (set(q.pid) & single)                                        # single-image ids: gallery only
    if size == 2400: assert single
    assert set(df.camid[df.split == 'gallery']) == {1} and set(df.camid[df.split != 'gallery']) == {0}
    assert df.type.isna().all()
    assert [None if pd.isna(c) else c for c in df.color] == [vid['color'].get(p) for p in df.pid]
    assert [None if pd.isna(c) else c for c in df.model] == [vid['model'].get(p) for p in df.pid]
    assert df.color.isna().any() and df.model.isna().any()                 # ids without attributes exist
    assert df.attrs['dataset'] == 'vehicleid' and df.attrs['type_names'] == {}
    assert set(df.attrs['color_names']) == set(vid['color'].values())
    assert all(Path(p).parent == vid['root']/'image' for p in df.path)

def test_vehicleid_draw(vid):
    a = load_vehicleid(vid['root'], test_size=2400, trial=3, seed=7)
    pd.testing.assert_frame_equal(a, load_vehicleid(vid['root'], test_size=2400, trial=3, seed=7))
    gal = lambda d: frozenset(d.path[d.split == 'gallery'])
    assert len({gal(load_vehicleid(vid['root'], test_size=2400, trial=t)) for t in range(10)}) > 1
    assert len({gal(load_vehicleid(vid['root'], test_size=2400, seed=s)) for s in range(10)}) > 1

@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=40), st.integers(0, 20), st.integers(0, 2**31))
def test_gallery_mask_property(pids, trial, seed):
    m = vehicleid_gallery_mask(pids, trial=trial, seed=seed)
    pids = np.array(pids)
    assert m.dtype == bool and sorted(pids[m]) == sorted(set(pids))
    assert (m == vehicleid_gallery_mask(pids, trial=trial, seed=seed)).all()

def test_vehicleid_other_sizes_and_jpg_names(tmp_path):
    t = make_vehicleid_tree(tmp_path/'V', test_sizes={3200: 2, 6000: 3, 13164: 4}, image='empty')
    _rewrite(t['root']/'train_test_split'/'train_list.txt', lambda ls: [l.replace(' ', '.jpg ', 1) for l in ls])
    df = load_vehicleid(t['root'], test_size=13164)
    assert df[df.split != 'train'].pid.nunique() == 4
    assert all(p.endswith('.jpg') and not p.endswith('.jpg.jpg') for p in df.path)
    with _err(t['root']/'train_test_split'/'test_list_800.txt', 'available: [3200, 6000, 13164]'):
        load_vehicleid(t['root'], test_size=800)

def test_vehicleid_missing_attributes(vid):
    (vid['root']/'attribute'/'model_attr.txt').unlink()
    with pytest.warns(UserWarning, match='model_attr.txt not found'): df = load_vehicleid(vid['root'])
    assert df.model.isna().all() and df.color.notna().any()

def test_vehicleid_errors(vid):
    root = vid['root']
    lst = root/'train_test_split'/'test_list_800.txt'
    orig = lst.read_text()
    _rewrite(lst, lambda ls: ls[:1] + [ls[1] + ' 7'] + ls[2:])
    with _err(lst, 'line 2', "expected '<image name> <vehicle id>'"): load_vehicleid(root)
    lst.write_text(orig); _rewrite(lst, lambda ls: ls[:2] + [ls[2].split()[0] + ' abc'] + ls[3:])
    with _err(lst, 'line 3', "vehicle id 'abc' is not an integer"): load_vehicleid(root)
    lst.write_text(orig); _rewrite(lst, lambda ls: ls + [ls[0]])
    with _err(lst, f'line {len(vid["test"][800]) + 1}', 'listed twice'): load_vehicleid(root)
    lst.write_text(orig)
    name = vid['test'][800][2]['name']
    (root/'image'/f'{name}.jpg').unlink()
    with _err(lst, 'line 3', f'{name}.jpg does not exist'): load_vehicleid(root)
    (root/'image'/f'{name}.jpg').write_bytes(b'')
    col = root/'attribute'/'color_attr.txt'
    _rewrite(col, lambda ls: ls[:3] + [ls[3].split()[0] + ' 1 2'] + ls[4:])
    with _err(col, 'line 4', "expected '<vehicle id> <color id>'"): load_vehicleid(root)
    _rewrite(col, lambda ls: ls[:3] + [ls[0].split()[0] + ' 6'] + ls[4:])
    with _err(col, 'line 4', 'has two color ids'): load_vehicleid(root)
    (root/'train_test_split'/'train_list.txt').unlink()
    with _err(root/'train_test_split'/'train_list.txt', 'missing list file', 'Expected layout'): load_vehicleid(root)

# ------------------------------------------------------------------------------------------------------------ VeRi-Wild
@pytest.fixture
def wild(tmp_path): return make_veriwild_tree(tmp_path/'VERI-Wild', image='empty')

@pytest.mark.parametrize('size', [3000, 5000, 10000])
def test_veriwild_rows(wild, size):
    df = load_veriwild(wild['root'], test_size=size)
    _check_schema(df, model=True)
    q, g = wild['test'][size]
    exp = wild['train'] + q + g
    assert list(df.split) == ['train'] * len(wild['train']) + ['query'] * len(q) + ['gallery'] * len(g)
    assert [os.path.relpath(p, wild['root']/'images') for p in df.path] == [r['key'] + '.jpg' for r in exp]
    assert list(df.pid) == [r['pid'] for r in exp] and list(df.camid) == [r['camid'] for r in exp]
    for c, names in (('model', 'model_names'), ('type', 'type_names'), ('color', 'color_names')):
        assert [df.attrs[names][k] for k in df[c]] == [r[c] for r in exp]
        assert list(df.attrs[names].values()) == sorted({r[c] for r in wild['info']})   # codes: sorted texts
    assert 'business purpose vehicle/MPV' in df.attrs['type_names'].values()

def test_veriwild_codes_do_not_depend_on_size(wild):
    a, b = load_veriwild(wild['root'], test_size=3000), load_veriwild(wild['root'], test_size=10000)
    assert a.attrs == b.attrs
    pd.testing.assert_frame_equal(a[a.split == 'train'], b[b.split == 'train'])

def test_veriwild_keep_time_and_no_header(wild):
    info = wild['root']/'train_test_split'/'vehicle_info.txt'
    _rewrite(info, lambda ls: ls[1:])
    df = load_veriwild(wild['root'], keep_time=True)
    assert list(df.columns)[-1] == 'time' and df.time.iloc[0] == wild['train'][0]['time']

def test_veriwild_errors(wild):
    split = wild['root']/'train_test_split'
    info = split/'vehicle_info.txt'
    orig = info.read_text()
    _rewrite(info, lambda ls: ls[:4] + [ls[4].rsplit(';', 1)[0]] + ls[5:])
    with _err(info, 'line 5', "expected 6 ';'-separated fields", 'got 5'): load_veriwild(wild['root'])
    info.write_text(orig); _rewrite(info, lambda ls: ls[:2] + [ls[2] + ';extra'] + ls[3:])
    with _err(info, 'line 3', 'got 7'): load_veriwild(wild['root'])
    info.write_text(orig); _rewrite(info, lambda ls: ls[:2] + [ls[2].replace(';00', ';cam', 1)] + ls[3:])
    with _err(info, 'line 3', 'camera id'): load_veriwild(wild['root'])
    info.write_text(orig); _rewrite(info, lambda ls: ls[:3] + [ls[1]] + ls[3:])
    with _err(info, 'line 4', 'appears twice'): load_veriwild(wild['root'])
    info.write_text(orig)
    q = split/'test_3000_query.txt'
    qorig = q.read_text()
    _rewrite(q, lambda ls: ls + ['30001/999999'])
    with _err(q, f'line {len(qorig.splitlines()) + 1}', '30001/999999 is not in', 'vehicle_info.txt'):
        load_veriwild(wild['root'])
    key = wild['test'][3000][0][0]['key']
    q.write_text(qorig); _rewrite(q, lambda ls: ['30002/' + key.split('/')[1]] + ls[1:])
    with _err(q, 'line 1', 'belongs to vehicle 30001'): load_veriwild(wild['root'])
    q.write_text(qorig); _rewrite(q, lambda ls: ['30001-000001'] + ls[1:])
    with _err(q, 'line 1', "expected '<vehicle id>/<image id>[.jpg]'"): load_veriwild(wild['root'])
    q.write_text(qorig)
    (wild['root']/'images'/f'{key}.jpg').unlink()
    with _err(q, 'line 1', 'does not exist'): load_veriwild(wild['root'])
    with _err(split/'test_4000_query.txt', 'available: [3000, 5000, 10000]'): load_veriwild(wild['root'], test_size=4000)

# ----------------------------------------------------------------------------------------------------------------- VRIC
def test_vric(tmp_path):
    t = make_vric_tree(tmp_path/'VRIC', n_train_ids=4, per_id=2, n_test_ids=5, image='empty')
    df = load_vric(t['root'])
    _check_schema(df)
    exp = t['train'] + t['query'] + t['gallery']
    assert list(df.split) == ['train'] * 8 + ['query'] * 5 + ['gallery'] * 5
    assert list(df.pid) == [r['pid'] for r in exp] and list(df.camid) == [r['camid'] for r in exp]
    assert [Path(p).name for p in df.path] == [r['name'] for r in exp]
    assert Path(df.path[8]).parent.name == 'probe_images'
    assert df.color.isna().all() and df.attrs['dataset'] == 'vric'

def test_vric_errors(tmp_path):
    t = make_vric_tree(tmp_path/'VRIC', image='empty')
    fn = t['root']/'vric_probe.txt'
    orig = fn.read_text()
    _rewrite(fn, lambda ls: ls[:1] + [ls[1].rsplit(' ', 1)[0]] + ls[2:])
    with _err(fn, 'line 2', "expected '<image name> <vehicle id> <camera id>'"): load_vric(t['root'])
    fn.write_text(orig); _rewrite(fn, lambda ls: ls[:1] + [ls[1] + 'x'] + ls[2:])
    with _err(fn, 'line 2', 'camera id'): load_vric(t['root'])
    fn.write_text(orig)
    (t['root']/'gallery_images'/t['gallery'][2]['name']).unlink()
    with _err(t['root']/'vric_gallery.txt', 'line 3', 'does not exist'): load_vric(t['root'])

# --------------------------------------------------------------------------------------------------------------- custom
def _own(tmp_path, n=4):
    d = tmp_path/'own'
    (d/'imgs').mkdir(parents=True)
    for i in range(n): (d/'imgs'/f'{i}.jpg').write_bytes(b'')
    return d

def test_custom_csv(tmp_path):
    d = _own(tmp_path)
    (d/'data.csv').write_text('path,pid,camid,split,type,note\nimgs/0.jpg,10,1,train,2,a\nimgs/1.jpg, 10,2,train,,b\n'
                              f'{d}/imgs/2.jpg,11,1,query,,c\nimgs/3.jpg,11,2,gallery,9,d\n')
    df = load_custom(d/'data.csv', type_names=VERI_TYPES)
    _check_schema(df)
    assert list(df.path) == [str(d/'imgs'/f'{i}.jpg') for i in range(4)]
    assert list(df.pid) == [10, 10, 11, 11] and list(df.camid) == [1, 2, 1, 2]
    assert list(df.type.fillna(-1)) == [2, -1, -1, 9] and df.color.isna().all()
    assert list(df.columns) == ['path', 'pid', 'camid', 'split', 'color', 'type', 'note']
    assert df.attrs['type_names'] == VERI_TYPES and df.attrs['dataset'] == 'custom'
    # relative to `root` instead of the CSV's folder
    (tmp_path/'lists').mkdir(); (tmp_path/'lists'/'d.csv').write_text('path,pid,camid,split\nimgs/0.jpg,1,1,train\n')
    assert load_custom(tmp_path/'lists'/'d.csv', root=d).path[0] == str(d/'imgs'/'0.jpg')
    with _err(tmp_path/'lists'/'d.csv', 'line 2', 'does not exist'): load_custom(tmp_path/'lists'/'d.csv')

def test_custom_dataframe_roundtrip(tmp_path):
    t = make_veriwild_tree(tmp_path/'W', image='empty')
    df = load_veriwild(t['root'], keep_time=True)
    back = load_custom(df)
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs == df.attrs
    rel = pd.DataFrame(dict(path=['imgs/0.jpg'], pid=[1], camid=[1], split=['train'], model=[3]))
    d = _own(tmp_path)
    out = load_custom(rel, root=d)
    assert out.path[0] == str(d/'imgs'/'0.jpg') and out.model[0] == 3 and 'model_names' in out.attrs

@pytest.mark.parametrize('csv,msg', [
    ('path,pid,split\nimgs/0.jpg,1,train\n', 'missing column(s) camid'),
    ('path,pid,camid,split\nimgs/0.jpg,1,1,train\nimgs/1.jpg,,1,train\n', "line 3: column 'pid' is empty"),
    ('path,pid,camid,split\nimgs/0.jpg,1,1.5,train\n', "line 2: column 'camid' has '1.5'"),
    ('path,pid,camid,split\nimgs/0.jpg,1,,train\n', "line 2: column 'camid' has ''"),
    ('path,pid,camid,split\nimgs/0.jpg,1,1,train\nimgs/1.jpg,1,1,test\n', "line 3: split 'test' is not one of"),
    ('path,pid,camid,split,color\nimgs/0.jpg,1,1,train,red\n', "line 2: column 'color' has 'red'"),
    ('path,pid,camid,split\n,1,1,train\n', 'line 2: empty path'),
    ('path,pid,camid,split\nimgs/0.jpg,1,1,train\nimgs/9.jpg,1,1,train\n', 'line 3: image'),
])
def test_custom_csv_errors(tmp_path, csv, msg):
    d = _own(tmp_path)
    (d/'bad.csv').write_text(csv)
    with _err(d/'bad.csv', msg): load_custom(d/'bad.csv')

def test_custom_dataframe_errors(tmp_path):
    df = pd.DataFrame(dict(path=['a.jpg', 'b.jpg'], pid=[1, 2], camid=[1, None], split=['train', 'train']))
    with _err('DataFrame row 1', "column 'camid'"): load_custom(df, check_files=False)
    with _err(tmp_path/'none.csv', 'no such CSV file or folder'): load_custom(tmp_path/'none.csv')

def test_custom_folder(tmp_path):
    t = make_veri776_tree(tmp_path/'V', image='empty')
    df = load_custom(t['root'])
    _check_schema(df)
    for s in ('train', 'query', 'gallery'):
        d = df[df.split == s]
        assert sorted(zip(d.pid, d.camid)) == sorted((r['pid'], r['camid']) for r in t[s])
    flat = tmp_path/'flat'
    (flat/'sub').mkdir(parents=True)
    for n in ('0001_c001_1.jpg', 'sub/0002_c003.png', 'notes.txt'): (flat/n).write_bytes(b'')
    df = load_custom(flat)
    assert list(df.pid) == [1, 2] and list(df.camid) == [1, 3] and set(df.split) == {'train'}
    split = tmp_path/'split'
    for n in ('train/0001_c001_1.jpg', 'query/0002_c001_1.jpg', 'gallery/0002_c002_1.jpg'):
        (split/n).parent.mkdir(parents=True, exist_ok=True); (split/n).write_bytes(b'')
    assert list(load_custom(split).split) == ['train', 'query', 'gallery']

def test_custom_folder_errors(tmp_path):
    d = tmp_path/'f'
    (d/'train').mkdir(parents=True)
    with _err(d, 'no images found'): load_custom(d)
    (d/'train'/'car.jpg').write_bytes(b'')
    with _err(d/'train'/'car.jpg', "not like VeRi's"): load_custom(d)
    (d/'train'/'car.jpg').unlink(); (d/'train'/'0001_c001.jpg').write_bytes(b'')
    (d/'0002_c001.jpg').write_bytes(b'')
    with _err(d/'0002_c001.jpg', 'outside the split folders'): load_custom(d)
    (d/'0002_c001.jpg').unlink(); (d/'image_train').mkdir()
    with _err(d, 'both train/ and image_train/'): load_custom(d)

# ---------------------------------------------------------------------------------------------------------- dispatching
def test_load_dataset(tmp_path):
    t = make_vric_tree(tmp_path/'VRIC', image='empty')
    pd.testing.assert_frame_equal(load_dataset('VRIC', t['root']), load_vric(t['root']))
    v = make_vehicleid_tree(tmp_path/'VID', image='empty')
    pd.testing.assert_frame_equal(load_dataset('vehicle_id', v['root'], test_size=1600, trial=2),
                                  load_vehicleid(v['root'], test_size=1600, trial=2))
    w = make_veri776_tree(tmp_path/'VeRi', image='empty')
    assert load_dataset('VeRi-776', w['root']).attrs['dataset'] == 'veri776'
    assert load_dataset('custom', w['root']).attrs['dataset'] == 'custom'
    assert set(READERS) == {'veri776', 'vehicleid', 'veriwild', 'vric', 'custom'}
    with pytest.raises(ValueError, match='unknown dataset'): load_dataset('market1501', tmp_path)
