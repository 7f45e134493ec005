"""Data stage: load IMDB or the user's files into :class:`Dataset` objects, split them."""

from .dataset import Dataset, train_validation_split
from .files import load_table, read_texts
from .imdb import load_imdb, read_imdb

__all__ = ["Dataset", "train_validation_split", "load_imdb", "read_imdb", "load_table", "read_texts"]
