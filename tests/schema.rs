//! `#[job_executor]` reports the JSON Schema of its argument type when that type
//! implements `schemars::JsonSchema`, and none otherwise.

use jobs::prelude::*;
use jobs::{executor_fn, JobExecutor};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// Arguments with a derived schema.
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct ResizeArgs {
    /// Width in pixels.
    width: u32,
    /// Output format.
    format: Option<String>,
}

#[job_executor("SchemaResize")]
async fn resize(args: ResizeArgs) -> Result<u32, JobError> {
    Ok(args.width)
}

/// Arguments without a schema.
#[derive(Deserialize)]
struct Opaque {
    #[allow(dead_code)]
    anything: String,
}

#[job_executor("SchemaOpaque")]
async fn opaque(_args: Opaque) -> Result<(), JobError> {
    Ok(())
}

#[job_executor("SchemaNoArgs")]
async fn no_args() -> Result<(), JobError> {
    Ok(())
}

#[job_executor("SchemaString")]
async fn string_arg(text: String) -> Result<String, JobError> {
    Ok(text)
}

fn schema_of(catalog: &jobs::Catalog, job_type: &str) -> Option<serde_json::Value> {
    catalog.get(job_type).unwrap().executor().args_schema()
}

#[test]
fn derived_schemas_are_reported_and_missing_ones_are_none() {
    let catalog = jobs::Catalog::discover().unwrap();

    let resize = schema_of(&catalog, "SchemaResize").expect("ResizeArgs derives JsonSchema");
    assert_eq!(resize["type"], "object");
    assert_eq!(resize["properties"]["width"]["type"], "integer");
    assert_eq!(
        resize["properties"]["width"]["description"],
        "Width in pixels."
    );
    assert_eq!(resize["required"], json!(["width"]));

    assert_eq!(schema_of(&catalog, "SchemaOpaque"), None);

    let none = schema_of(&catalog, "SchemaNoArgs").expect("NoArgs has a schema");
    assert_eq!(none["maxProperties"], 0);

    let string = schema_of(&catalog, "SchemaString").expect("String has a schema");
    assert_eq!(string["type"], "string");
}

#[test]
fn executors_registered_by_hand_can_declare_a_schema() {
    let plain = executor_fn("Plain", |_ctx| async { Ok::<_, JobError>(()) });
    assert_eq!(plain.args_schema(), None);
    let declared = executor_fn("Declared", |_ctx| async { Ok::<_, JobError>(()) })
        .with_args_schema(json!({ "type": "object" }));
    assert_eq!(declared.args_schema(), Some(json!({ "type": "object" })));
}
