//! Known-answer vectors for `ike`: the data files live under `data/`, the tests under `tests/`.
