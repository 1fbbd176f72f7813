//! Runs the compile-pass and compile-fail cases of each macro.
//!
//! A failing case's expected compiler output sits beside it as a `.stderr` file;
//! regenerate them with `TRYBUILD=overwrite cargo test -p sente-lite-ui-tests`
//! and read the diff as a user would.

#[test]
fn event() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/event/pass/*.rs");
    cases.compile_fail("tests/event/fail/*.rs");
}

#[test]
fn handler() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/handler/pass/*.rs");
    cases.compile_fail("tests/handler/fail/*.rs");
}

#[test]
fn api() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/api/fail/*.rs");
}

#[test]
fn channel() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/channel/pass/*.rs");
    cases.compile_fail("tests/channel/fail/*.rs");
}
