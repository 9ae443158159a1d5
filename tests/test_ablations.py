"The ablation benchmark's rows (benchmarks/ablations.py): valid settings, one run per row and seed, the tables' order."
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'benchmarks'))
import ablations as ab, method_comparison as mc
from fastreid_vehicle.models import method_settings
from fastreid_vehicle.synthetic import synth_config


def test_rows_use_existing_settings_and_share_the_full_model():
    for _, label, spec in ab.CONFIGS:
        settings = set(spec) - {'method', 'stage2'}
        assert settings <= set(method_settings(spec['method'])['model']), label
    a = ab.parse_args([])
    keys = [mc.run_key(s, 0, a) for _, _, s in ab.CONFIGS]
    assert len(set(keys)) == len(keys)          # each row trained once per seed
    tab = ab.table_configs()
    assert {mc.run_key(s, 0, a) for _, _, s in tab} == set(keys)
    stripes = [s['n_stripes'] for g, _, s in tab if g == 'mfgnet stripes']
    assert stripes == [1, 2, 3, 4, 6]           # the 4-stripe model appears in both MFG-Net tables


def test_recipe_has_rows_for_six_stripes():
    a = ab.parse_args([])
    r = mc.recipe(a)
    assert r['preset'] == 'bands' and r['size'][0] // 16 >= max(s.get('n_stripes', 1) for _, _, s in ab.CONFIGS)
    cfg = synth_config('bands')
    assert cfg.band_marks == 4 and cfg.attr_pairs > 0
