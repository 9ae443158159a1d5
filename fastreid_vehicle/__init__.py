"""fastreid_vehicle: vehicle re-identification for fastai (MFG-Net, AttributeNet)."""
__version__ = "0.1.0"

import warnings as _warnings
# fastai / timm still decorate helpers with `torch.jit.script`, which torch 2.15 deprecates with a FutureWarning on
# import; it says nothing actionable to users of this library, so it is silenced here (that message only).
_warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning)
