//! Compile-time checks of `#[job_executor]`: every accepted signature compiles, and every
//! misdeclaration fails with a message that points at the offending tokens and says what
//! to write instead (the expected messages are the `.stderr` files beside each case).

#[test]
fn job_executor_declarations() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
