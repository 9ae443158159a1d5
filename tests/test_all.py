"`from fastreid_vehicle.all import *` gives fastai's vision API as `from fastai.vision.all import *` does, then the package's."
import fastai.vision.all as fva
import fastreid_vehicle.all as frv

def _star(module:str) -> dict:
    ns = {}
    exec(f'from {module} import *', ns)
    return {k: v for k, v in ns.items() if k != '__builtins__'}

def test_star_import_gives_fastais_vision_names():
    ours, theirs = _star('fastreid_vehicle.all'), _star('fastai.vision.all')
    for name in ('Learner', 'load_learner', 'vision_learner', 'SaveModelCallback', 'EarlyStoppingCallback', 'plt', 'torch',
                 'np', 'pd', 'nn', 'F', 'Path', 'L', 'DataBlock', 'ImageBlock', 'aug_transforms', 'get_image_files'):
        assert ours.get(name) is getattr(fva, name), name
    assert not set(theirs) - set(ours), sorted(set(theirs) - set(ours))[:20]
    # the package's names replace none of fastai's: every fastai name means what it means in fastai
    assert not [n for n in theirs if ours[n] is not theirs[n]]

def test_star_import_gives_the_package():
    ours = _star('fastreid_vehicle.all')
    for name in ('reid_learner', 'ReidDataLoaders', 'GalleryIndex', 'create_backbone', 'train', 'import_extra',
                 'evaluate_features', 'load_veri776'):
        assert ours.get(name) is getattr(frv, name), name
