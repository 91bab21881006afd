"""realign: Reformatted Alignment for instruction-tuning data.

The library behind the five step scripts (classify, retrieval, reformat, merge, filter).
Installed as the package `realign` from the folder `code/`.
"""

__version__ = "0.1.0"
