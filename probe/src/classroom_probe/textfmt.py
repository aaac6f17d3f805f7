"""Values as people read them: numbers with sensible digits, yes/no, and a dash for a missing value.

Every renderer and the command line print through these, so no report shows a Python literal."""

import math


def num(x: float | int | None, digits: int = 3) -> str:
    """A number with at most `digits` decimals (trailing zeros dropped), thousands separated; '-' for none."""
    if x is None or isinstance(x, bool):
        return yes_no(x)
    if isinstance(x, int):
        return f"{x:,}"
    if not math.isfinite(x):
        return "-" if math.isnan(x) else "infinite"
    text = f"{x:,.0f}" if abs(x) >= 1e6 else f"{x:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def sig(x: float | None, figures: int = 3) -> str:
    """A number to `figures` significant figures (for tables of latencies that span 0.01 to 10,000 ms)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x == 0:
        return "0"
    digits = max(0, figures - 1 - math.floor(math.log10(abs(x))))
    return num(round(x, digits), digits)


def yes_no(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "no")


def value(x: object) -> str:
    """Any JSON-like value as text: numbers via `num`, booleans as yes/no, None as '-'."""
    if x is None or isinstance(x, bool):
        return yes_no(x)
    if isinstance(x, int | float):
        return num(x)
    if isinstance(x, list | tuple):
        return ", ".join(value(v) for v in x) or "-"
    return str(x)


def with_unit(x: float | int | None, unit: str) -> str:
    text = num(x)
    if x is None or not unit:
        return text
    return f"{text} {unit}" if unit != "%" else f"{text} %"


def duration(seconds: float | None) -> str:
    """Seconds as '42 s', '3 min 05 s' or '1 h 02 min'."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
