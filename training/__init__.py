"""skyguard's offline side: survey constants, mocks, datasets, preprocessing, models, training.

Heavy imports (galsim, torch) stay inside the modules that need them, so importing this package
costs nothing.
"""

__version__ = "0.1.0"
