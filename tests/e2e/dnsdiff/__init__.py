"""Differential DNS testing: one corpus of zones and queries, two servers, every difference."""

from .compare import Difference, Rules, Verdict, compare
from .corpus import Ambiguity, Corpus, CorpusError, Query, ZoneFile, load_corpus, parse_queries
from .report import render, summary
from .runner import Outcome, RunResult, run
from .send import Endpoint, Exchange, build_query, exchange

__all__ = [
    "Ambiguity",
    "Corpus",
    "CorpusError",
    "Difference",
    "Endpoint",
    "Exchange",
    "Outcome",
    "Query",
    "Rules",
    "RunResult",
    "Verdict",
    "ZoneFile",
    "build_query",
    "compare",
    "exchange",
    "load_corpus",
    "parse_queries",
    "render",
    "run",
    "summary",
]
