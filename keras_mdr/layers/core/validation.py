"""Argument checks shared by the layers: the received value goes in the message."""


def check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_units(name, units, allow_empty=False):
    """A sequence of layer widths, each an integer >= 1."""
    if isinstance(units, int):
        units = [units]
    units = list(units)
    if not units and not allow_empty:
        raise ValueError(f"{name} must name at least one width, got {units!r}")
    for u in units:
        if not isinstance(u, int) or isinstance(u, bool) or u < 1:
            raise ValueError(f"{name} must be a list of integers >= 1, got {units!r}")
    return units


def check_rate(name, value):
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def check_positive(name, value):
    """A number > 0, returned as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def check_non_negative_int(name, value, zero_means=None):
    """An integer >= 0; `zero_means` says what 0 does, for the message."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        meaning = f" (0: {zero_means})" if zero_means else ""
        raise ValueError(f"{name} must be an integer >= 0{meaning}, got {value!r}")
    return value
