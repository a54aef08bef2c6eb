"""Plain typed dataclasses: the vocabulary every layer speaks."""
