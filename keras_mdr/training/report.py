"""Per-domain x per-task metric tables for people."""


def _cell(value):
    return "    -" if value is None else f"{value:.4f}"


def format_report(report, title=None):
    """Formats `MultiDomainModel.evaluate_report` output as a text table.

    One row per domain plus `all`; for each task its AUC, logloss and count.
    """
    tasks = list(report["tasks"])
    domains = list(next(iter(report["tasks"].values()))["domains"])
    width = max([len("domain")] + [len(d) for d in domains])
    header = f"{'domain':<{width}}" + "".join(f" | {t[:22]:>22}" for t in tasks)
    sub = " " * width + "".join(f" | {'auc':>6} {'logloss':>7} {'count':>7}" for _ in tasks)
    lines = ([title] if title else []) + [header, sub, "-" * len(sub)]
    for domain in domains + ["all"]:
        cells = []
        for task in tasks:
            values = report["tasks"][task] if domain == "all" else report["tasks"][task]["domains"][domain]
            cells.append(f" | {_cell(values['auc']):>6} {_cell(values['logloss']):>7} {values['count']:>7}")
        lines.append(f"{domain:<{width}}" + "".join(cells))
    return "\n".join(lines)
