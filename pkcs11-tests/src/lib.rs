//! Black-box tests live in `tests/`; they load the built `libhsmux.so`.
