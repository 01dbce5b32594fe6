"""mdmlkit — machine learning on molecular dynamics.

Three capabilities, each a subpackage/module you import explicitly:

* landscape mapping of nanocluster MD: :mod:`mdmlkit.md.heating`, :mod:`mdmlkit.landscape.fingerprints`,
  :mod:`mdmlkit.landscape.structure`, :mod:`mdmlkit.landscape`, :mod:`mdmlkit.landscape.thermo`;
* Behler–Parrinello potentials: :mod:`mdmlkit.descriptors`, :mod:`mdmlkit.potential`;
* active learning: :mod:`mdmlkit.active`.

Units follow ASE: Å, eV, eV/Å, K, fs.
"""
__version__ = "0.1.0"
