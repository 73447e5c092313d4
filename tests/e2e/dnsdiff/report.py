"""A difference report someone can act on: per query, what differs, then both replies."""

from __future__ import annotations

from collections import Counter

import dns.message

from .compare import Verdict
from .runner import Outcome, RunResult
from .send import Exchange


def summary(result: RunResult) -> str:
    counts = Counter(d.verdict for d in result.differences)
    failing = sum(1 for o in result.outcomes if any(d.fails for d in o.differences))
    parts = [f"{v.value}={counts[v]}" for v in Verdict]
    return (
        f"{result.left} vs {result.right}: {len(result.outcomes)} queries, "
        f"{failing} with hard differences; differences: " + ", ".join(parts)
    )


def render(result: RunResult, *, verbose: bool = True, include_excused: bool = True) -> str:
    lines = [summary(result), ""]
    failing = [o for o in result.outcomes if any(d.fails for d in o.differences)]
    excused = [o for o in result.outcomes if o.differences and o not in failing]
    if failing:
        lines.append("== Hard differences ==")
        for outcome in failing:
            lines.extend(_outcome(result, outcome, verbose=verbose))
    if include_excused and excused:
        lines.append("== Excused differences (ambiguous, soft query or soft aspect) ==")
        for outcome in excused:
            lines.extend(_outcome(result, outcome, verbose=False))
    return "\n".join(lines) + "\n"


def _outcome(result: RunResult, outcome: Outcome, *, verbose: bool) -> list[str]:
    query = outcome.query
    lines = [f"-- {query.source}: {query.text}"]
    if query.ambiguous is not None:
        aspects = (
            "all" if query.ambiguous.aspects is None else ",".join(sorted(query.ambiguous.aspects))
        )
        lines.append(f"   ambiguous[{aspects}]: {query.ambiguous.reason}")
    for d in outcome.differences:
        what = f"{d.aspect} {d.detail}".strip()
        lines.append(f"   {d.verdict.value:>10} {what}")
        lines.append(f"{'':>14}{result.left}: {d.left}")
        lines.append(f"{'':>14}{result.right}: {d.right}")
    if verbose:
        for name, ex in ((result.left, outcome.left), (result.right, outcome.right)):
            lines.append(f"   {name} replied:")
            lines.extend("      " + line for line in _reply_text(ex).splitlines())
    lines.append("")
    return lines


def _reply_text(ex: Exchange) -> str:
    if not ex.wires:
        return f"(nothing: {ex.error})"
    texts = []
    for wire in ex.wires[:3]:
        try:
            texts.append(dns.message.from_wire(wire).to_text())
        except Exception as exc:  # noqa: BLE001 - show what cannot be parsed
            texts.append(f"(unparseable, {len(wire)} bytes: {exc}) {wire[:64].hex()}")
    if len(ex.wires) > 3:
        texts.append(f"... {len(ex.wires) - 3} more messages")
    return "\n".join(texts)
