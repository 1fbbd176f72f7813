//! Compile-pass and compile-fail tests of sente-lite's `#[event]` and `#[handler]` macros.
//!
//! The tests live in `tests/ui.rs`; this library is empty.
