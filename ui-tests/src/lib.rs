//! Compile-pass and compile-fail tests of sente-lite's macros.
//!
//! The tests live in `tests/ui.rs`. This library re-exports sente-lite, as a
//! facade crate would, for the cases that reach it through another path.

pub use sente_lite as runtime;
