"""lookalike: which class (character, celebrity, person) does a face resemble?

The public API is small: ``Settings`` for configuration, ``create_backbone`` for embeddings,
``Predictor`` for answers. Nothing heavy is imported or loaded here.
"""

__version__ = "0.1.0"
