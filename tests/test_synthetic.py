"Tests of `fastreid_vehicle.synthetic`: the synthetic VeRi-776-format benchmark."
import hashlib, json, re, time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastreid_vehicle import synthetic as syn
from fastreid_vehicle.synthetic import (SYNTH_PRESETS, COARSE_DETAILS, SynthIdentity, attribute_only_baseline,
                                        make_cameras, make_identities, plan_veri, render_vehicle, synth_config,
                                        synthesize_veri, synthetic_sample_grid, SYNTH_MANIFEST)

NAME_RE = re.compile(r"^(\d{4})_c(\d{3})_(\d{8})_(\d)\.jpg$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return synthesize_veri(tmp_path_factory.mktemp("syn") / "veri", "tiny", seed=0)


def _names(root, f): return (Path(root) / f).read_text().split()


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def _xml(root, f):
    raw = (Path(root) / f).read_bytes()
    assert raw.startswith(b'<?xml version="1.0" encoding="gb2312"?>')
    return ET.fromstring(raw.decode("gb2312").split("?>", 1)[1])


def test_tree_layout(tiny):
    m = json.loads((tiny / SYNTH_MANIFEST).read_text())
    for split, folder, lst in (("train", "image_train", "name_train.txt"), ("query", "image_query", "name_query.txt"),
                               ("gallery", "image_test", "name_test.txt")):
        names = _names(tiny, lst)
        assert names == sorted(names) and len(names) == m["counts"][split] > 0
        assert sorted(p.name for p in (tiny / folder).glob("*.jpg")) == names
        assert all(NAME_RE.match(n) for n in names), names[:3]
    for f in ("list_color.txt", "list_type.txt", "gt_image.txt", "jk_image.txt", "train_label.xml", "test_label.xml"):
        assert (tiny / f).is_file(), f
    assert (tiny / "list_color.txt").read_text().splitlines()[0] == "1 yellow"
    assert (tiny / "list_type.txt").read_text().splitlines()[-1] == "9 estate"
    assert not list(tiny.parent.glob(".*tmp-*"))          # the temporary build folder was renamed away


def test_label_xml(tiny):
    idents = json.loads((tiny / "synthetic_identities.json").read_text())
    for f, tag, lst in (("train_label.xml", "TrainingImages", "name_train.txt"), ("test_label.xml", "TestImages", "name_test.txt")):
        root = _xml(tiny, f)
        assert root.tag == tag and len(root) == 1 and root[0].tag == "Items"
        items = list(root[0])
        assert int(root[0].get("number")) == len(items) and [i.get("imageName") for i in items] == _names(tiny, lst)
        for it in items:
            pid, cam = NAME_RE.match(it.get("imageName")).groups()[:2]
            assert it.get("vehicleID") == pid and it.get("cameraID") == f"c{cam}"
            assert int(it.get("colorID")) == idents[str(int(pid))]["color"] and 1 <= int(it.get("colorID")) <= 10
            assert int(it.get("typeID")) == idents[str(int(pid))]["type"] and 1 <= int(it.get("typeID")) <= 9


def test_query_gallery_protocol(tiny):
    pc = lambda f: [tuple(int(x) for x in NAME_RE.match(n).groups()[:2]) for n in _names(tiny, f)]
    train, query, gallery = pc("name_train.txt"), pc("name_query.txt"), pc("name_test.txt")
    assert not {p for p, _ in train} & {p for p, _ in gallery}
    for pid, cam in query:          # every query has a true match in another camera
        assert any(p == pid and c != cam for p, c in gallery)
    assert len(set(query)) == len(query)     # at most one query per (vehicle, camera)
    # VeRi-776 keeps the query images in image_test too: same bytes
    for n in _names(tiny, "name_query.txt"):
        assert (tiny / "image_query" / n).read_bytes() == (tiny / "image_test" / n).read_bytes()
    gt, jk = (tiny / "gt_image.txt").read_text().splitlines(), (tiny / "jk_image.txt").read_text().splitlines()
    assert len(gt) == len(jk) == len(query)
    for q, g, j in zip(_names(tiny, "name_query.txt"), gt, jk):
        assert g.split() and q in j.split() and not set(g.split()) & set(j.split())


def test_query_not_in_gallery(tmp_path):
    root = synthesize_veri(tmp_path / "v", "tiny", seed=1, query_in_gallery=False)
    q, g = set(_names(root, "name_query.txt")), set(_names(root, "name_test.txt"))
    assert q and not q & g
    gal = [tuple(int(x) for x in NAME_RE.match(n).groups()[:2]) for n in g]
    for n in q:
        pid, cam = (int(x) for x in NAME_RE.match(n).groups()[:2])
        assert any(p == pid and c != cam for p, c in gal)


def test_deterministic_and_worker_independent(tmp_path, tiny):
    a = synthesize_veri(tmp_path / "a", "tiny", seed=0, n_workers=2)
    assert _hashes(a) == _hashes(tiny)
    b = synthesize_veri(tmp_path / "b", "tiny", seed=1)
    ha, hb = _hashes(a), _hashes(b)
    assert set(ha) != set(hb) or ha != hb


def test_cache_and_atomic_writes(tmp_path, monkeypatch):
    dest = tmp_path / "v"
    root = synthesize_veri(dest, "tiny")
    f = next((root / "image_train").iterdir()); mtime = f.stat().st_mtime_ns
    t0 = time.time(); assert synthesize_veri(dest, "tiny") == root
    assert time.time() - t0 < 1 and f.stat().st_mtime_ns == mtime          # reused, not redrawn
    before = _hashes(root)
    # a failing run leaves the previous tree untouched and no temporary folder behind
    def boom(*a, **k): raise RuntimeError("interrupted")
    monkeypatch.setattr(syn, "_write_labels", boom)
    with pytest.raises(RuntimeError): synthesize_veri(dest, "tiny", size=48)
    monkeypatch.undo()
    assert _hashes(root) == before and sorted(p.name for p in tmp_path.iterdir()) == ["v"]
    # other settings replace the tree
    synthesize_veri(dest, "tiny", size=48)
    from PIL import Image
    assert Image.open(next((root / "image_train").iterdir())).size == (48, 48)
    assert json.loads((root / SYNTH_MANIFEST).read_text())["config"]["size"] == 48


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a synthetic VeRi dataset"): synthesize_veri(tmp_path, "tiny")
    assert (tmp_path / "mine.txt").read_text() == "precious"
    empty = tmp_path / "empty"; empty.mkdir()
    assert (synthesize_veri(empty, "tiny") / SYNTH_MANIFEST).is_file()


def test_default_location(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTREID_VEHICLE_DATA", str(tmp_path))
    root = synthesize_veri(None, "tiny", seed=3)
    assert root == tmp_path / "synthetic_veri_tiny_seed3" and (root / SYNTH_MANIFEST).is_file()
    other = synthesize_veri(None, "tiny", seed=3, size=32)
    assert other.parent == tmp_path and other != root                       # overrides get their own folder


def test_config_errors():
    with pytest.raises(ValueError, match="Unknown synthetic preset"): synth_config("huge")
    with pytest.raises(TypeError, match="Unknown SynthConfig field"): synth_config("tiny", colours=3)
    with pytest.raises(ValueError, match="cams_per_id"): synth_config("tiny", cams_per_id=(1, 3))
    assert SYNTH_PRESETS["veri_like"].n_train_ids == 576 and SYNTH_PRESETS["veri_like"].n_cams == 20
    assert SYNTH_PRESETS["veri_like"].size == 256


def test_load_veri776_reads_it_unchanged(tiny):
    from fastreid_vehicle.readers import load_veri776
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = load_veri776(tiny)
    idents = json.loads((tiny / "synthetic_identities.json").read_text())
    m = json.loads((tiny / SYNTH_MANIFEST).read_text())
    assert df["split"].value_counts().to_dict() == m["counts"]
    for split, lst in (("train", "name_train.txt"), ("query", "name_query.txt"), ("gallery", "name_test.txt")):
        sub = df[df["split"] == split]
        names = _names(tiny, lst)
        assert [Path(p).name for p in sub["path"]] == names
        assert sub["pid"].tolist() == [int(n[:4]) for n in names]
        assert sub["camid"].tolist() == [int(n[6:9]) for n in names]
    assert df["color"].tolist() == [idents[str(p)]["color"] for p in df["pid"]]
    assert df["type"].tolist() == [idents[str(p)]["type"] for p in df["pid"]]


def test_attribute_only_baseline(tiny):
    r = attribute_only_baseline(tiny).set_index("ranking")
    assert r.loc["all details incl. plate characters (oracle)", ["rank1", "mAP"]].tolist() == [100.0, 100.0]
    s = attribute_only_baseline("small").set_index("ranking")       # from the plan alone: no image is drawn
    assert s.loc["colour + type", "mAP"] < 60 < s.loc["colour + type + all coarse details", "mAP"] == 100.0
    assert s.loc["chance (no knowledge)", "mAP"] < 10
    with pytest.raises(FileNotFoundError, match="synthetic_identities.json"): attribute_only_baseline(tiny / "image_train")


def test_render_vehicle_attributes_visible():
    cam = make_cameras(2, seed=0)[0]; view = dict(yaw=40, pitch=15, roll=0)
    def img(**kw):
        v = SynthIdentity(pid=1, **{"type": 1, "color": 7, "rgb": (236, 236, 232), **kw})
        return np.asarray(render_vehicle(v, cam, np.random.default_rng(0), size=96, view=view, occlude=False), float)
    white, black = img(), img(color=10, rgb=(26, 26, 28))
    assert white[30:70, 25:75].mean() > black[30:70, 25:75].mean() + 40                 # colour shows
    bus = img(type=7)
    assert np.abs(bus - white).mean() > 10                                                # type changes the silhouette
    assert (img() == white).all()                                                         # deterministic
    # identity details change pixels only in their own horizontal band of the crop (what stripe features look at)
    def band(**kw):
        rows = np.nonzero(np.abs(img(**kw) - white).mean(2) > 15)[0]
        assert len(rows) > 10, kw
        return rows.mean() / 96
    assert band(roof=4) < .3 and band(sticker=1, sticker_color=1) < .4                   # sunroof, windshield sticker
    assert .35 < band(decal=1, decal_color=2) < .6                                       # side stripe
    assert min(band(plate=1), band(wheel_style=1, rim_color=2), band(bumper=1)) > .55    # plate, wheels, bumper


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 80), seed=st.integers(0, 2**16))
def test_identities_property(n, seed):
    ids = make_identities(range(1, n + 1), seed)
    assert sorted(ids) == list(range(1, n + 1))
    keys = [(i.type, i.color) + i.details(COARSE_DETAILS) for i in ids.values()]
    assert len(set(keys)) == n
    if n >= 10: assert {i.color for i in ids.values()} == set(range(1, 11))
    if n >= 9: assert {i.type for i in ids.values()} == set(range(1, 10))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), ntr=st.integers(1, 15), nte=st.integers(1, 8), ncam=st.integers(2, 6))
def test_plan_property(seed, ntr, nte, ncam):
    cfg = synth_config("tiny", n_train_ids=ntr, n_test_ids=nte, n_cams=ncam, cams_per_id=(2, 4))
    plan = plan_veri(cfg, seed)
    assert plan == plan_veri(cfg, seed)
    assert len({p["pid"] for p in plan}) == ntr + nte
    assert len({p["pid"] for p in plan if p["split"] != "train"}) == nte
    gal = {(p["pid"], p["cam"]) for p in plan if p["split"] == "gallery"}
    for q in (p for p in plan if p["split"] == "query"):
        assert any(pid == q["pid"] and c != q["cam"] for pid, c in gal)
    assert all(1 <= p["cam"] <= ncam for p in plan)


def test_sample_grid(tiny, tmp_path):
    g = synthetic_sample_grid(tiny, n_ids=3, n_cams=2, size=32, fname=tmp_path / "g.png")
    assert g.size == (72 + 2 * 32, 14 + 3 * 32) and (tmp_path / "g.png").is_file()
    import pandas as pd
    rows = [(str(p), int(p.name[:4]), int(p.name[6:9])) for p in sorted((tiny / "image_train").glob("*.jpg"))]
    df = pd.DataFrame(rows, columns=["path", "pid", "camid"])
    g2 = synthetic_sample_grid(df, pids=[int(df.pid[0])], n_cams=2, size=32, label=False)
    assert g2.size == (64, 32)


# ---------------------------------------------------------------- checks moved from nbs/01_synthetic.ipynb
import pandas as pd
from fastreid_vehicle.readers import VERI_COLORS, VERI_TYPES, load_veri776
from fastreid_vehicle.synthetic import SYNTH_BASE_RGB, SYNTH_COLOR_WEIGHTS, SYNTH_TYPE_WEIGHTS, SYNTH_DETAILS, render_image


def test_name_tables_and_detail_weights():
    assert len(VERI_COLORS) == 10 and len(VERI_TYPES) == 9 and set(SYNTH_BASE_RGB) == set(VERI_COLORS)
    assert sum(SYNTH_TYPE_WEIGHTS.values()) == pytest.approx(1) and sum(SYNTH_COLOR_WEIGHTS.values()) == pytest.approx(1)
    assert set(syn._DETAIL_WEIGHTS) <= set(SYNTH_DETAILS)
    for k, w in syn._DETAIL_WEIGHTS.items(): assert len(w) == len(SYNTH_DETAILS[k])


def test_identities_and_cameras_worked_examples():
    ids = make_identities(range(1, 31), seed=0)
    assert len(ids) == 30 and {i.type for i in ids.values()} == set(VERI_TYPES) and {i.color for i in ids.values()} == set(VERI_COLORS)
    assert make_identities(range(1, 31), seed=0) == ids and make_identities(range(1, 31), seed=1) != ids
    keys = [(i.type, i.color) + i.details(COARSE_DETAILS) for i in ids.values()]
    assert len(set(keys)) == len(keys)
    cams = make_cameras(8, seed=0)
    assert [c.name for c in cams] == [f"c00{i}" for i in range(1, 9)] and make_cameras(8, seed=0) == cams
    assert len({round(c.yaw) for c in cams}) == 8
    off_axis = lambda cs: np.mean([min(c.yaw % 180, 180 - c.yaw % 180) for c in cs])
    narrow = make_cameras(8, seed=0, view_spread=.4, light_jitter=.5)
    assert off_axis(narrow) < .6 * off_axis(cams) and np.std([c.gain for c in narrow]) < np.std([c.gain for c in cams])
    assert make_cameras(8, seed=0, view_spread=1., light_jitter=1.) == cams


def test_geometry_faces_and_models():
    V = syn._hexa(-2, 2, 0, 1, .9, x0t=-1, x1t=1.5, wt=.8)
    np.testing.assert_allclose(syn._uv(syn._face(V, 'front'), np.array([[0., 0], [1, 1]])), np.array([[2, -.9, 0], [1.5, .8, 1]]))
    for f in syn._FACES:   # outward normals
        q = syn._face(V, f); n = np.cross(q[2] - q[0], q[3] - q[1])
        assert np.dot(n, q.mean(0) - V.reshape(-1, 3).mean(0)) > 0, f
    for t in VERI_TYPES:
        m = syn.vehicle_model(SynthIdentity(pid=1, type=t, color=7, rgb=(200, 200, 200), roof=3, sticker=1, decal=5, decal_color=2))
        assert len(m.polys) > 20 and len(m.wheels) >= 2, t


def test_render_deterministic_and_details_in_their_bands():
    ident = make_identities([5], seed=3)[5]; cam = make_cameras(4, seed=0)[1]
    a = render_vehicle(ident, cam, np.random.default_rng(0), size=64)
    assert a.size == (64, 64) and a.mode == 'RGB'
    np.testing.assert_array_equal(np.asarray(a), np.asarray(render_vehicle(ident, cam, np.random.default_rng(0), size=64)))
    assert np.abs(np.asarray(a, float) - np.asarray(render_vehicle(ident, cam, np.random.default_rng(1), size=64), float)).mean() > 1
    cam = make_cameras(1, seed=0)[0]; view = dict(yaw=35, pitch=18, roll=0)
    base = dict(pid=1, type=1, color=7, rgb=(236, 236, 232))
    def img(ds=1., **kw): return np.asarray(render_vehicle(SynthIdentity(**{**base, **kw}), cam, np.random.default_rng(0), size=96,
                                                           view=view, occlude=False, detail_scale=ds), float)
    ref, rows_mean = img(), []
    for kw in [dict(roof=4), dict(sticker=1, sticker_color=1), dict(decal=1, decal_color=2), dict(wheel_style=1, rim_color=2),
               dict(plate=1), dict(bumper=1)]:
        rows_mean.append((np.nonzero(np.abs(img(**kw) - ref).mean(2) > 15)[0] / 96).mean())
    rows_mean = pd.Series(rows_mean)
    assert rows_mean.is_monotonic_increasing or rows_mean.iloc[:3].is_monotonic_increasing
    assert rows_mean.iloc[0] < .3 and rows_mean.iloc[3:].min() > .55
    changed = lambda ds, **kw: int((np.abs(img(ds, **kw) - img(ds)).mean(2) > 15).sum())
    for kw in [dict(sticker=1, sticker_color=1), dict(decal=1, decal_color=2), dict(roof=3), dict(plate=1)]:
        assert changed(2., **kw) > 1.3 * changed(1., **kw), kw


def test_presets_plan_and_render_image():
    assert synth_config('tiny', size=32).size == 32 and synth_config('small') == SYNTH_PRESETS['small']
    with pytest.raises(Exception, match='Unknown synthetic preset'): synth_config('huge')
    with pytest.raises(Exception, match='Unknown SynthConfig field'): synth_config('tiny', colour=3)
    plan = plan_veri(SYNTH_PRESETS['tiny'], seed=0)
    assert plan == plan_veri(SYNTH_PRESETS['tiny'], seed=0) and len({p['pid'] for p in plan}) == 18
    names = [p['name'] for p in plan if p['split'] != 'query']
    assert len(names) == len(set(names))
    assert not {p['pid'] for p in plan if p['split'] == 'train'} & {p['pid'] for p in plan if p['split'] != 'train'}
    gal = {(p['pid'], p['cam']) for p in plan if p['split'] == 'gallery'}
    for q in (p for p in plan if p['split'] == 'query'): assert any(pid == q['pid'] and cam != q['cam'] for pid, cam in gal), q
    im = render_image(SYNTH_PRESETS['tiny'], 0, 3, 2, 0)
    assert im.size == (64, 64)
    np.testing.assert_array_equal(np.asarray(im), np.asarray(render_image(SYNTH_PRESETS['tiny'], 0, 3, 2, 0)))


def test_tiny_tree_counts_grid_and_labels(tiny):
    m = json.loads((tiny / SYNTH_MANIFEST).read_text())
    assert len(list((tiny / 'image_train').glob('*.jpg'))) == m['counts']['train']
    assert len(_names(tiny, 'name_test.txt')) == m['counts']['gallery']
    assert len((tiny / 'gt_image.txt').read_text().splitlines()) == m['counts']['query']
    assert synthetic_sample_grid(tiny, n_ids=4, n_cams=4, size=64).size == (72 + 64 * 4, 14 + 64 * 4)
    df = load_veri776(tiny)
    idents = json.loads((tiny / 'synthetic_identities.json').read_text())
    assert df['split'].value_counts().to_dict() == m['counts']
    assert df['color'].tolist() == [idents[str(p)]['color'] for p in df['pid']]
    assert df['type'].tolist() == [idents[str(p)]['type'] for p in df['pid']]
    r = attribute_only_baseline('small', seed=0).set_index('ranking')
    assert r.loc['chance (no knowledge)', 'mAP'] < r.loc['colour + type', 'mAP'] < r.loc['colour + type + all coarse details', 'mAP'] - 20


def test_band_marks_and_attribute_pairs():
    from fastreid_vehicle.synthetic import SYNTH_MARK_RGB, band_marks
    cfg = synth_config('tiny', band_marks=4)
    assert band_marks(synth_config('tiny'), 0, 3) == ()
    assert sorted(band_marks(cfg, 0, 3)) == sorted(SYNTH_MARK_RGB[:4])        # the same colours on every vehicle ...
    assert len({band_marks(cfg, 0, p) for p in range(1, 19)}) > 1               # ... in orders of their own
    a = np.asarray(render_image(cfg, 0, 3, 2, 0), float)
    b = np.asarray(render_image(SYNTH_PRESETS['tiny'], 0, 3, 2, 0), float)
    assert np.abs(a - b).mean() > 1
    with pytest.raises(Exception, match='band_marks'): synth_config('tiny', band_marks=7)
    ids = make_identities(range(1, 41), seed=0, attr_pairs=3)                  # few colour + type pairs, shared
    assert len({(i.color, i.type) for i in ids.values()}) == 3
    assert make_identities(range(1, 9), seed=0) == make_identities(range(1, 9), seed=0, attr_pairs=0)


def test_later_fields_left_out_of_manifest_at_defaults():
    "Trees written before `band_marks` / `attr_pairs` existed keep matching their manifest."
    assert not {'band_marks', 'attr_pairs'} & set(syn._manifest(SYNTH_PRESETS['small'], 'small', 0)['config'])
    assert syn._manifest(SYNTH_PRESETS['bands'], 'bands', 0)['config']['band_marks'] == 4
