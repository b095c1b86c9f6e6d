"""nerre: joint named-entity recognition and relation extraction with generative language models.

Light imports only: the training, prediction and spaCy modules load their heavy dependencies when used.
"""

from nerre.example import Entity, Example, Relation, Token
from nerre.schema import Label, Schema

__version__ = "0.1.0"
__all__ = ["Entity", "Example", "Label", "Relation", "Schema", "Token", "__version__"]
