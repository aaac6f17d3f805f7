"""The verdict as plain text: the table the command line prints, checks.txt holds and the role shows."""

from classroom_probe.render import RESULT_WORDS, headline, limit_text, measured_text
from classroom_probe.report import Report
from classroom_probe.textfmt import num

EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 3}


def checks_table(r: Report, width: int = 100) -> str:
    v = r["verdict"]
    rows = [(f"{c['title']} [{c['id']}]", measured_text(c), limit_text(c), RESULT_WORDS.get(c["result"], c["result"]))
            for c in v["checks"]]
    w0 = max([len("check"), *(len(x[0]) for x in rows)])
    w1 = max([len("measured"), *(len(x[1]) for x in rows)])
    w2 = max([len("limit"), *(len(x[2]) for x in rows)])
    lines = [f"Verdict: {v['status'].upper()} (exit {EXIT_CODES.get(v['status'], 3)})", *_wrap(headline(r), width),
             f"{'check':<{w0}}  {'measured':>{w1}}  {'limit':<{w2}}  result"]
    lines += [f"{a:<{w0}}  {b:>{w1}}  {c:<{w2}}  {d}" for a, b, c, d in rows]
    todo = [c for c in v["checks"] if c["result"] in ("fail", "void")]
    for c in todo:
        lines += [f"What to change, {c['title']} [{c['id']}]:", *_wrap(c["what_to_change"], width, "  ")]
    failures = r["failures"]["by_kind"]
    if failures:
        lines.append("Failed requests by kind: " + ", ".join(f"{k} {num(n)}" for k, n in failures.items()))
    lines += [f"Warning: {w}" for w in r["warnings"]]
    return "\n".join(lines)


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    out: list[str] = []
    line = indent
    for word in text.split():
        if len(line) + len(word) + 1 > width and line.strip():
            out.append(line.rstrip())
            line = indent
        line += word + " "
    if line.strip():
        out.append(line.rstrip())
    return out
