def untrack(value: object) -> int:
    """Take an immutable value, and all it holds, out of the cycle collector's sight (the C
    source says when that is safe). Returns how many objects it took out."""
