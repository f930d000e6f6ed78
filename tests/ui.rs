//! Compile-time checks of `#[job_executor]`: every accepted signature compiles, and every
//! misdeclaration fails with a message that points at the offending tokens and says what
//! to write instead (the expected messages are the `.stderr` files beside each case).
//!
//! The cases in `tests/ui/fail-listing/` end with rustc's own list of "other types that
//! implement" a trait, or a type path rustc shortens only when no other item has its
//! name. Both depend on which crates the build links, so these cases have one expected
//! output with the default features (`fail-listing/`) and one with every feature
//! (`fail-listing-all-features/`, whose sources link to the same files); with another
//! mix of features they are not compared.

#[test]
fn job_executor_declarations() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
    // Every optional feature of the `jobs` package, combined with `any` or `all`.
    macro_rules! features {
        ($combine:ident) => {
            cfg!($combine(
                feature = "postgres",
                feature = "sqlite",
                feature = "http",
                feature = "schemars",
                feature = "testing",
                feature = "jiff",
                feature = "chrono",
                feature = "time",
                feature = "otel"
            ))
        };
    }
    let default_features = !features!(any);
    let all_features = features!(all);
    if default_features {
        cases.compile_fail("tests/ui/fail-listing/*.rs");
    } else if all_features {
        cases.compile_fail("tests/ui/fail-listing-all-features/*.rs");
    } else {
        eprintln!(
            "not compared: tests/ui/fail-listing (rustc's lists depend on the features; run with the default features or --all-features)"
        );
    }
}
