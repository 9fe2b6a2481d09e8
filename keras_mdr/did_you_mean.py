"""The "did you mean" part of an error about a misspelt name."""

import difflib


def did_you_mean(names, choices):
    """`" (did you mean 'epochs'?)"` for names close to one of `choices`, else `""`.

    Args:
        names: the unknown names (a string or a list of them).
        choices: the names that would have been accepted.
    """
    names = [names] if isinstance(names, str) else list(names)
    choices = [str(c) for c in choices]
    pairs = []
    for name in names:
        close = difflib.get_close_matches(str(name), choices, n=1)
        if close:
            pairs.append((name, close[0]))
    if not pairs:
        return ""
    if len(names) == 1:
        return f" (did you mean '{pairs[0][1]}'?)"
    return " (did you mean " + ", ".join(f"'{match}' for '{name}'" for name, match in pairs) + "?)"
