"Shared fixtures: the tiny synthetic VeRi benchmark and its DataLoaders, made once per test session (per worker)."
import os
os.environ.setdefault('MPLBACKEND', 'Agg')
import pytest, torch

@pytest.fixture(scope='session')
def tiny_veri_df(tmp_path_factory):
    from fastreid_vehicle.synthetic import synthesize_veri
    from fastreid_vehicle.readers import load_veri776
    return load_veri776(synthesize_veri(tmp_path_factory.mktemp('synth')/'veri_tiny', 'tiny', seed=0, n_workers=1))

@pytest.fixture
def tiny_dls(tiny_veri_df):
    from fastreid_vehicle.data import ReidDataLoaders
    torch.manual_seed(0)
    return ReidDataLoaders.from_df(tiny_veri_df, size=(64, 64), P=4, K=4, bs_valid=32, seed=0, pad=10, erase_p=0.5,
                                   camera_aware=False)   # the augmentation the tests were written with
