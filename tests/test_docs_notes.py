"""Every public name has parameter notes: the `# comment` after each parameter (fastai's docments style), or, for a
dataclass field, a non-empty `metadata['help']` (the config dataclasses' `setting(...)`). `*args`/`**kwargs` need none."""
import dataclasses, importlib, inspect, pkgutil
from fastcore.docments import docments
import fastreid_vehicle

def _modules():
    return [m.name for m in pkgutil.iter_modules(fastreid_vehicle.__path__) if not m.name.startswith('_') and m.name != 'all']

def _targets(mod):
    "(qualified name, callable) for each public function, class constructor and public method of a public class."
    for name in getattr(mod, '__all__', []):
        o = getattr(mod, name)
        if inspect.isfunction(o): yield name, o
        elif inspect.isclass(o) and o.__module__ == mod.__name__:
            if dataclasses.is_dataclass(o) or '__init__' in vars(o): yield name, o
            for k, v in vars(o).items():
                if not k.startswith('_') and (inspect.isfunction(v) or isinstance(v, (classmethod, staticmethod))):
                    yield f'{name}.{k}', getattr(o, k)

def _notes(f) -> dict:
    "Parameter name -> note, from `docments`, plus the dataclass fields' `metadata['help']`."
    is_dc = inspect.isclass(f) and dataclasses.is_dataclass(f)
    try: d = docments(f if is_dc or not inspect.isclass(f) else f.__init__)
    except Exception: d = {}
    d = {k: v for k, v in d.items() if v}
    if is_dc:
        for fld in dataclasses.fields(f):
            if (fld.metadata or {}).get('help'): d.setdefault(fld.name, fld.metadata['help'])
    return d

def _own(f):
    "Names the function's own code takes (None for a dataclass): parameters added by `@delegates` are noted at their source."
    if inspect.isclass(f):
        if dataclasses.is_dataclass(f): return None
        f = f.__init__
    c = getattr(inspect.unwrap(getattr(f, '__func__', f)), '__code__', None)
    return None if c is None else set(c.co_varnames[:c.co_argcount + c.co_kwonlyargcount])

def _params(f):
    try: sig = inspect.signature(f)
    except (TypeError, ValueError): return []
    own = _own(f)
    return [p.name for p in sig.parameters.values() if p.name not in ('self', 'cls')
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and (own is None or p.name in own)]

def missing_notes() -> list:
    out = []
    for mn in _modules():
        mod = importlib.import_module(f'fastreid_vehicle.{mn}')
        for n, f in _targets(mod):
            params = _params(f)
            if not params: continue
            d = _notes(f)
            miss = [p for p in params if not d.get(p)]
            if miss: out.append(f'{mn}.{n}: {miss}')
    return out

def test_every_public_parameter_has_a_note():
    miss = missing_notes()
    assert not miss, f'{len(miss)} public names lack parameter notes (add a `# comment` after each parameter):\n' + '\n'.join(miss)
