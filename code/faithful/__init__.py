"""The faithfulness checker: does a rewrite keep the meaning of its original? (see checker.py)"""

from realign.faithful.checker import Checker, Verdict, shared_checker

__all__ = ["Checker", "Verdict", "shared_checker"]
