"""Tiny dataset trees in the official on-disk formats (VeRi-776, VehicleID, VeRi-Wild, VRIC), quirks included.

Used by the readers' tests and the `00_readers` notebook; other tests can use them too. Each `make_*_tree(root, ...)`
writes the tree under `root` and returns what a correct reader must produce (`expected` rows per split), so tests
can compare. Images are tiny 8x8 JPEGs (`image='jpeg'`, the default) or empty files (`image='empty'`; the readers
never open images, only loaders do)."""
import io
from pathlib import Path

__all__ = ['write_image', 'make_veri776_tree', 'make_vehicleid_tree', 'make_veriwild_tree', 'make_vric_tree',
           'VERI_TYPE_ERRATA_IDS']

VERI_TYPE_ERRATA_IDS = (3, 7, 41)   # vehicles labelled typeID="0" in older VeRi-776 releases (really suv = 2)
_JPEG = {}

def _jpeg(color=(128, 64, 32)):
    "Bytes of an 8x8 JPEG of one colour (cached)"
    if color not in _JPEG:
        from PIL import Image
        buf = io.BytesIO()
        Image.new('RGB', (8, 8), color).save(buf, format='JPEG')
        _JPEG[color] = buf.getvalue()
    return _JPEG[color]

def write_image(path, image='jpeg', color=(128, 64, 32)):
    "Write a tiny image file at `path` (`image='jpeg'`: an 8x8 JPEG; `'empty'`: an empty file)"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_jpeg(color) if image == 'jpeg' else b'')
    return path

def _write_lines(path, lines, newline='\n', trailing_blank=False):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = newline.join(lines) + newline + (newline if trailing_blank else '')
    path.write_bytes(text.encode('utf-8'))

# ---------------------------------------------------------------------------------------------------------------- VeRi-776
def _veri_color(pid): return pid % 10 + 1
def _veri_type(pid): return pid % 9 + 1

def _veri_xml(items, quirks):
    "A VeRi label file as gb2312 bytes (the release's encoding), with a Chinese attribute value when `quirks`"
    desc = ' Description="车辆属性标注"' if quirks else ''
    lines = ['<?xml version="1.0" encoding="gb2312"?>', f'<TrainingImages Version="1.0"{desc}>',
             f'<Items number="{len(items)}">']
    for r, tid in items:
        lines.append(f'<Item imageName="{r["name"]}" vehicleID="{r["pid"]:04d}" cameraID="c{r["camid"]:03d}" '
                     f'colorID="{r["color"]}" typeID="{tid}" />')
    lines += ['</Items>', '</TrainingImages>']
    return ('\r\n'.join(lines) + '\r\n').encode('gb2312')

def make_veri776_tree(root, n_train_ids=4, n_test_ids=3, n_cams=3, per_cam=2, n_query_cams=2, quirks=True,
                      xml=True, name_tables=True, image='jpeg'):
    """Write a VeRi-776 tree under `root`; return `dict(root=, train=, query=, gallery=)`, lists of expected rows
    `dict(name, pid, camid, color, type)`.

    Quirks (when `quirks`): the training ids start with 3, 7 and 41, labelled `typeID="0"` in `train_label.xml`
    (expected type: suv = 2); the XML files are gb2312 with a Chinese attribute value and CRLF line ends;
    `name_test.txt` has CRLF line ends and a trailing blank line. Query images are copies of gallery images
    (as in the release: `image_query` images also appear in `image_test`)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    special = list(VERI_TYPE_ERRATA_IDS) if quirks else []
    train_ids = (special + [i for i in range(1, 1000) if i not in special])[:n_train_ids]
    test_ids = list(range(600, 600 + n_test_ids))
    def rows(pids):
        out = []
        for pid in pids:
            for cam in range(1, n_cams + 1):
                for k in range(per_cam):
                    frame = 10000 * cam + 100 * k + pid
                    out.append(dict(name=f'{pid:04d}_c{cam:03d}_{frame:08d}_{k}.jpg', pid=pid, camid=cam,
                                    color=_veri_color(pid), type=_veri_type(pid)))
        return out
    train, gallery = rows(train_ids), rows(test_ids)
    for r in train:
        if r['pid'] in special: r['type'] = 2
    query = [dict(r) for r in gallery if r['camid'] <= n_query_cams and r['name'].endswith('_0.jpg')]
    for folder, rs in (('image_train', train), ('image_query', query), ('image_test', gallery)):
        for r in rs: write_image(root/folder/r['name'], image, color=(25 * (r['pid'] % 10), 80, 160))
    _write_lines(root/'name_train.txt', [r['name'] for r in train])
    _write_lines(root/'name_query.txt', [r['name'] for r in query])
    _write_lines(root/'name_test.txt', [r['name'] for r in gallery], newline='\r\n' if quirks else '\n',
                 trailing_blank=quirks)
    if xml:
        tid = lambda r: 0 if r['pid'] in special else r['type']
        (root/'train_label.xml').write_bytes(_veri_xml([(r, tid(r)) for r in train], quirks))
        (root/'test_label.xml').write_bytes(_veri_xml([(r, r['type']) for r in gallery], quirks))
    if name_tables:
        colors = 'yellow orange green gray red blue white golden brown black'.split()
        types = 'sedan suv van hatchback mpv pickup bus truck estate'.split()
        _write_lines(root/'list_color.txt', [f'{k} {v}' for k, v in enumerate(colors, 1)])
        _write_lines(root/'list_type.txt', [f'{k} {v}' for k, v in enumerate(types, 1)])
    return dict(root=root, train=train, query=query, gallery=gallery)

# ---------------------------------------------------------------------------------------------------------------- VehicleID
def make_vehicleid_tree(root, n_train_ids=4, test_sizes=None, image='jpeg'):
    """Write a VehicleID tree under `root`; return `dict(root=, train=, test={size: rows}, color=, model=)`.

    `test_sizes` maps an official size (800, 1600, ...) to how many ids its tiny list holds (default
    `{800: 3, 1600: 5, 2400: 6}`; the lists are nested, like the release's). Vehicles have 1 to 4 images (an id with
    one test image has no query). Rows are `dict(name, pid, color, model)`; `color` / `model` are None where the
    attribute files leave the id out (only even ids have a colour, ids not divisible by 3 a model)."""
    root = Path(root)
    test_sizes = test_sizes or {800: 3, 1600: 5, 2400: 6}
    n_test = max(test_sizes.values())
    counter = iter(range(1, 10**7))
    color = {pid: pid % 7 for pid in range(1, 3000) if pid % 2 == 0}
    model = {pid: pid % 250 for pid in range(1, 3000) if pid % 3 != 0}
    def rows(pids):
        return [dict(name=f'{next(counter):07d}', pid=pid, color=color.get(pid), model=model.get(pid))
                for pid in pids for _ in range(pid % 4 + 1)]
    train = rows(range(1, n_train_ids + 1))
    test_all = rows(range(1001, 1001 + n_test))
    for r in train + test_all: write_image(root/'image'/f'{r["name"]}.jpg', image)
    split = root/'train_test_split'
    _write_lines(split/'train_list.txt', [f'{r["name"]} {r["pid"]}' for r in train])
    test = {}
    for size, k in test_sizes.items():
        ids = set(range(1001, 1001 + k))
        test[size] = [r for r in test_all if r['pid'] in ids]
        _write_lines(split/f'test_list_{size}.txt', [f'{r["name"]} {r["pid"]}' for r in test[size]])
    _write_lines(root/'attribute'/'color_attr.txt', [f'{p} {c}' for p, c in color.items()])
    _write_lines(root/'attribute'/'model_attr.txt', [f'{p} {m}' for p, m in model.items()])
    _write_lines(root/'attribute'/'img2vid.txt', [f'{r["name"]} {r["pid"]}' for r in train + test_all])
    return dict(root=root, train=train, test=test, color=color, model=model)

# ---------------------------------------------------------------------------------------------------------------- VeRi-Wild
VERIWILD_MODELS = ['Volkswagen-Lavida', 'Audi-A4L', 'Buick-Excelle GT', 'Toyota-Corolla']
VERIWILD_TYPES = ['sedan', 'SUV', 'business purpose vehicle/MPV', 'light passenger vehicle']
VERIWILD_COLORS = ['white', 'black', 'red', 'silvery gray', 'blue']

def make_veriwild_tree(root, n_train_ids=3, test_sizes=None, n_cams=4, per_id=4, image='jpeg'):
    """Write a VeRi-Wild tree under `root`; return `dict(root=, train=, test={size: (query, gallery)}, info=)`.

    `test_sizes` maps an official size (3000, 5000, 10000) to how many ids its tiny lists hold (default
    `{3000: 2, 5000: 3, 10000: 4}`). The first image of each test id is its query, the others its gallery.
    Rows are `dict(key='vid/img', pid, camid, model, type, color)` with the texts of `vehicle_info.txt`.
    Quirks: a header line, type texts with "/", list lines with and without `.jpg` (alternating),
    camera ids zero-padded."""
    root = Path(root)
    test_sizes = test_sizes or {3000: 2, 5000: 3, 10000: 4}
    n_test = max(test_sizes.values())
    counter = iter(range(1, 10**6))
    def rows(pids):
        out = []
        for pid in pids:
            for k in range(per_id):
                out.append(dict(key=f'{pid:05d}/{next(counter):06d}', pid=pid, camid=(pid + k) % n_cams + 1,
                                time=f'2018-03-{pid % 28 + 1:02d} 11:40:{k:02d}',
                                model=VERIWILD_MODELS[pid % len(VERIWILD_MODELS)],
                                type=VERIWILD_TYPES[pid % len(VERIWILD_TYPES)],
                                color=VERIWILD_COLORS[pid % len(VERIWILD_COLORS)]))
        return out
    train = rows(range(1, n_train_ids + 1))
    test_all = rows(range(30001, 30001 + n_test))
    for r in train + test_all: write_image(root/'images'/f'{r["key"]}.jpg', image)
    split = root/'train_test_split'
    jpg = lambda i, r: r['key'] + ('.jpg' if i % 2 else '')
    _write_lines(split/'train_list.txt', [jpg(i, r) for i, r in enumerate(train)])
    test = {}
    for size, k in test_sizes.items():
        ids = set(range(30001, 30001 + k))
        rs = [r for r in test_all if r['pid'] in ids]
        seen, query, gallery = set(), [], []
        for r in rs:
            (gallery if r['pid'] in seen else query).append(r)
            seen.add(r['pid'])
        test[size] = (query, gallery)
        _write_lines(split/f'test_{size}_query.txt', [jpg(i, r) for i, r in enumerate(query)])
        _write_lines(split/f'test_{size}.txt', [jpg(i + 1, r) for i, r in enumerate(gallery)])
    info = ['id/image;Camera ID;Time;Model;Type;Color']
    info += [f'{r["key"]};{r["camid"]:03d};{r["time"]};{r["model"]};{r["type"]};{r["color"]}' for r in train + test_all]
    _write_lines(split/'vehicle_info.txt', info)
    return dict(root=root, train=train, test=test, info=train + test_all)

# ---------------------------------------------------------------------------------------------------------------- VRIC
def make_vric_tree(root, n_train_ids=3, per_id=3, n_test_ids=3, n_cams=5, image='jpeg'):
    """Write a VRIC tree under `root`; return `dict(root=, train=, query=, gallery=)`, rows `dict(name, pid, camid)`.
    Probe and gallery hold one image per test id (single-shot), on different cameras; the id is not in the file name."""
    root = Path(root)
    counter = iter(range(1, 10**6))
    def rows(pids, n, cam0=0):
        return [dict(name=f'{next(counter):06d}_{k}.jpg', pid=pid, camid=(pid * 7 + k + cam0) % n_cams + 1)
                for pid in pids for k in range(n)]
    train = rows(range(1, n_train_ids + 1), per_id)
    test_ids = range(2001, 2001 + n_test_ids)
    query, gallery = rows(test_ids, 1), rows(test_ids, 1, cam0=1)
    for folder, lst, rs in (('train_images', 'vric_train.txt', train), ('probe_images', 'vric_probe.txt', query),
                            ('gallery_images', 'vric_gallery.txt', gallery)):
        for r in rs: write_image(root/folder/r['name'], image)
        _write_lines(root/lst, [f'{r["name"]} {r["pid"]} {r["camid"]}' for r in rs])
    return dict(root=root, train=train, query=query, gallery=gallery)
