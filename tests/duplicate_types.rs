//! Two `#[job_executor]`s with one type name in one program: the service refuses to start
//! and names both declarations.

use jobs::prelude::*;
use jobs::BuildError;

#[job_executor("Twice")]
async fn first() -> Result<(), JobError> {
    Ok(())
}

mod elsewhere {
    use jobs::prelude::*;

    #[job_executor("Twice")]
    async fn second() -> Result<(), JobError> {
        Ok(())
    }
}

#[tokio::test]
async fn duplicate_type_names_are_a_start_up_error_naming_both_declarations() {
    let err = Jobs::builder().start().unwrap_err();
    let BuildError::DuplicateJobType(duplicate) = &err else {
        panic!("unexpected error {err:?}")
    };
    assert_eq!(duplicate.job_type, "Twice");
    let mut places = [duplicate.first.as_str(), duplicate.second.as_str()];
    places.sort();
    assert_eq!(
        places,
        [
            "tests/duplicate_types.rs:16 (duplicate_types::elsewhere)",
            "tests/duplicate_types.rs:8 (duplicate_types)",
        ]
    );
    let message = err.to_string();
    assert!(
        message.contains("job type `Twice` has two executors"),
        "{message}"
    );
    assert!(message.contains("rename one of them"), "{message}");
}
