"""Per-domain x per-task metric tables for people."""

# The widest table line, in characters; wider tables wrap into blocks of tasks.
MAX_WIDTH = 200


def _cell(value):
    return "    -" if value is None else f"{value:.4f}"


def format_report(report, title=None, max_width=MAX_WIDTH):
    """Formats `MultiDomainModel.evaluate_report` output as a text table.

    One row per domain plus `all`; for each task its AUC, logloss and count
    (the count only where the report has counts). Tasks that would make a
    line wider than `max_width` go into a further block of rows below.
    """
    tasks = list(report["tasks"])
    domains = list(next(iter(report["tasks"].values()))["domains"])
    with_counts = "count" in report["tasks"][tasks[0]]
    width = max([len("domain")] + [len(d) for d in domains])
    cell_width = len(" | 0.1234 0.1234 ") + (8 if with_counts else 0)
    per_block = max(1, (max_width - width) // cell_width)
    lines = [title] if title else []
    for start in range(0, len(tasks), per_block):
        lines += _block(report, tasks[start : start + per_block], domains, width, with_counts)
    return "\n".join(lines)


def _block(report, tasks, domains, width, with_counts):
    name_width = 22 if with_counts else 14
    header = f"{'domain':<{width}}" + "".join(f" | {t[:name_width]:>{name_width}}" for t in tasks)
    columns = f"{'auc':>6} {'logloss':>7}" + (f" {'count':>7}" if with_counts else "")
    sub = " " * width + "".join(f" | {columns}" for _ in tasks)
    lines = [header, sub, "-" * len(sub)]
    for domain in domains + ["all"]:
        cells = []
        for task in tasks:
            values = report["tasks"][task] if domain == "all" else report["tasks"][task]["domains"][domain]
            count = f" {values['count']:>7}" if with_counts else ""
            cells.append(f" | {_cell(values['auc']):>6} {_cell(values['logloss']):>7}{count}")
        lines.append(f"{domain:<{width}}" + "".join(cells))
    return lines
