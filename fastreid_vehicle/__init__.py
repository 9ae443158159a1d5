"""fastreid_vehicle: vehicle re-identification for fastai (MFG-Net, AttributeNet)."""
__version__ = "0.1.0"
