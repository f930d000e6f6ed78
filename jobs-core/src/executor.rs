//! Executors, their registration record, and typed job types.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::{BoxFuture, ExecutionError, JobContext, JobPolicy, PayloadError};

/// Runs the jobs of one type.
///
/// `#[job_executor]` implements this for you; implement it by hand (or use [`executor_fn`])
/// to register an executor at run time.
pub trait JobExecutor: Send + Sync + 'static {
    /// The job type this executor runs.
    fn job_type(&self) -> &str;

    /// Checks a payload before a job is stored. The default accepts any payload.
    fn validate(&self, payload: &Value) -> Result<(), PayloadError> {
        let _ = payload;
        Ok(())
    }

    /// Runs one attempt of a job, returning its JSON result or an error message.
    fn execute(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, ExecutionError>>;

    /// A JSON Schema of the payload this executor accepts, when it is known.
    ///
    /// `#[job_executor]` fills it in when the argument type implements
    /// `schemars::JsonSchema` (schemars 1) and the `schemars` feature is on; the HTTP API
    /// shows it in `GET /job-types` and the dashboard uses it to prefill its form. The
    /// default knows none.
    fn args_schema(&self) -> Option<Value> {
        None
    }

    /// The type's retries, time limit, priority and backoff. `#[job_executor]` fills it
    /// from its options; the default is no retries, no limit, priority 0.
    fn policy(&self) -> JobPolicy {
        JobPolicy::new()
    }

    /// The value a job with `payload` is keyed by for the type's
    /// [`JobPolicy::concurrency`]: `#[job_executor("T", concurrency_key = "tenant_id")]`
    /// reads the field `tenant_id` of the arguments ([`ConcurrencyKey`](crate::ConcurrencyKey)).
    /// `None`: the job has no key of its own. The default has none.
    fn concurrency_key(&self, payload: &Value) -> Result<Option<String>, PayloadError> {
        let _ = payload;
        Ok(None)
    }
}

/// An executor made from a closure; see [`executor_fn`].
pub struct FnExecutor<F> {
    job_type: String,
    run: F,
    args_schema: Option<Value>,
    policy: JobPolicy,
}

impl<F> FnExecutor<F> {
    /// Declares the JSON Schema of the payload, shown by [`JobExecutor::args_schema`].
    /// It documents the payload; it does not validate it.
    pub fn with_args_schema(mut self, schema: Value) -> Self {
        self.args_schema = Some(schema);
        self
    }

    /// Sets the type's retries, time limit, priority and backoff.
    pub fn with_policy(mut self, policy: JobPolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// An executor for `job_type` that runs `run`, for registration at run time.
///
/// The payload is not validated at submit; read it from [`JobContext::payload`].
///
/// ```
/// use jobs_core::{executor_fn, JobExecutor, JobError};
///
/// let echo = executor_fn("Echo", |ctx| async move {
///     Ok::<_, JobError>(ctx.payload().clone())
/// });
/// assert_eq!(echo.job_type(), "Echo");
/// ```
pub fn executor_fn<F, Fut, T, E>(job_type: impl Into<String>, run: F) -> FnExecutor<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: fmt::Display + 'static,
{
    FnExecutor {
        job_type: job_type.into(),
        run,
        args_schema: None,
        policy: JobPolicy::new(),
    }
}

impl<F, Fut, T, E> JobExecutor for FnExecutor<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: fmt::Display + 'static,
{
    fn job_type(&self) -> &str {
        &self.job_type
    }

    fn execute(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, ExecutionError>> {
        let fut = (self.run)(ctx);
        Box::pin(async move { into_execution_result(fut.await) })
    }

    fn args_schema(&self) -> Option<Value> {
        self.args_schema.clone()
    }

    fn policy(&self) -> JobPolicy {
        self.policy
    }
}

/// Where an executor was declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    /// The source file.
    pub file: &'static str,
    /// The line of the declaration.
    pub line: u32,
    /// The module it lives in.
    pub module_path: &'static str,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} ({})", self.file, self.line, self.module_path)
    }
}

/// The record `#[job_executor]` submits to `inventory` for each executor; the runtime's
/// catalog collects them at start-up.
///
/// It is const-constructible so that it can live in a static.
#[derive(Clone, Copy, Debug)]
pub struct ExecutorRegistration {
    /// The job type.
    pub job_type: &'static str,
    /// Builds the executor.
    pub new_executor: fn() -> Arc<dyn JobExecutor>,
    /// Checks a payload against the executor's argument type.
    pub validate: fn(&Value) -> Result<(), PayloadError>,
    /// Where the executor was declared.
    pub location: SourceLocation,
}

inventory::collect!(ExecutorRegistration);

impl ExecutorRegistration {
    /// Every registration linked into the program, in unspecified order.
    pub fn all() -> impl Iterator<Item = &'static ExecutorRegistration> {
        inventory::iter::<ExecutorRegistration>.into_iter()
    }
}

/// A job type known at compile time, with its argument and output types.
///
/// `#[job_executor("Export")] async fn export(args: ExportArgs, ..) -> Result<Report, E>`
/// implements it for a generated type named `export`, so callers can submit with
/// `jobs.submit::<export>(ExportArgs { .. })` and read back a `Report`.
pub trait JobType: Send + Sync + 'static {
    /// The job type's name.
    const NAME: &'static str;
    /// What the executor takes ([`NoArgs`] when it takes none).
    type Args: Send + 'static;
    /// What the executor returns on success.
    type Output: 'static;
}

/// The argument type of an executor that takes no arguments.
///
/// Serializes as `null`; deserializes from `null` or an empty object, and refuses anything
/// else so that a payload sent to the wrong job type is caught at submit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoArgs;

impl Serialize for NoArgs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for NoArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<serde_json::Map<String, Value>>::deserialize(deserializer) {
            Ok(None) => Ok(NoArgs),
            Ok(Some(map)) if map.is_empty() => Ok(NoArgs),
            _ => Err(serde::de::Error::custom(
                "this job type takes no arguments: send null or {}",
            )),
        }
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for NoArgs {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NoArgs".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "This job type takes no arguments: null or {}.",
            "type": ["null", "object"],
            "maxProperties": 0
        })
    }
}

/// Deserializes a payload into `T`, borrowing it.
pub fn deserialize_args<T: DeserializeOwned>(payload: &Value) -> Result<T, PayloadError> {
    T::deserialize(payload).map_err(PayloadError::new)
}

/// Turns an executor's typed outcome into what the processor stores. A [`JobError`](crate::JobError)
/// keeps its kind (`Permanent`, `Snooze`); any other error is a retryable failure with
/// its `Display` text.
pub fn into_execution_result<T: Serialize, E: fmt::Display + 'static>(
    outcome: Result<T, E>,
) -> Result<Value, ExecutionError> {
    match outcome {
        Ok(value) => serde_json::to_value(value)
            .map_err(|e| ExecutionError::new(format!("could not serialize the job's result: {e}"))),
        Err(error) => Err(
            match (&error as &dyn std::any::Any).downcast_ref::<crate::JobError>() {
                Some(job_error) => ExecutionError::from_job_error(job_error),
                None => ExecutionError::new(error),
            },
        ),
    }
}

/// Support for `#[job_executor]`'s generated code: compile-time checks whose traits carry
/// a message that says what an executor must look like, and the glue that runs one.
#[doc(hidden)]
pub mod macro_support {
    use super::*;

    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the return type of a job executor",
        label = "expected `Result<T, E>` here",
        note = "a job executor returns `Result<T, E>` with `T: Serialize` and `E: Display`, e.g. `Result<serde_json::Value, JobError>` or `anyhow::Result<Report>`"
    )]
    pub trait ExecutorReturn {
        type Output;
        type Error;
        fn into_result(self) -> Result<Self::Output, Self::Error>;
    }

    impl<T, E> ExecutorReturn for Result<T, E> {
        type Output = T;
        type Error = E;
        fn into_result(self) -> Result<T, E> {
            self
        }
    }

    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the arguments of a job executor",
        label = "the job's JSON payload is deserialized into this type",
        note = "add `#[derive(serde::Deserialize)]` to it (and `Serialize` to submit it with typed arguments); it must own its data and be `Send + 'static`"
    )]
    pub trait JobArgs: DeserializeOwned + Send + 'static {}
    impl<T: DeserializeOwned + Send + 'static> JobArgs for T {}

    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the result of a job executor",
        label = "the job's result is serialized to JSON from this type",
        note = "add `#[derive(serde::Serialize)]` to it, or return `()` or `serde_json::Value`"
    )]
    pub trait JobOutput: Serialize {}
    impl<T: Serialize> JobOutput for T {}

    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the error type of a job executor",
        label = "the job's error message is this type's `Display` output",
        note = "use a type that implements `Display`, such as `JobError`, `anyhow::Error` or a `thiserror` enum"
    )]
    pub trait JobFailure: fmt::Display + 'static {}
    impl<T: fmt::Display + 'static> JobFailure for T {}

    /// Deserializes the payload into the executor's arguments.
    pub fn args<T: JobArgs>(payload: &Value) -> Result<T, PayloadError> {
        deserialize_args(payload)
    }

    /// Boxes one execution of the user's function. The bounds here are where a misdeclared
    /// executor is caught: the future must be `Send` so that any worker thread can run it.
    pub fn execution<F, T, E>(future: F) -> BoxFuture<'static, Result<Value, ExecutionError>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: JobOutput,
        E: JobFailure,
    {
        Box::pin(async move { into_execution_result(future.await) })
    }

    /// Looks up the JSON Schema of an argument type `T`: through
    /// [`SchemaFromJsonSchema`] when `T: schemars::JsonSchema` (feature `schemars`),
    /// otherwise through [`SchemaUnknown`], which knows none. Call as
    /// `(&ArgsSchema::<T>::new()).args_schema()` with both traits in scope.
    pub struct ArgsSchema<T: ?Sized>(core::marker::PhantomData<fn() -> Box<T>>);

    impl<T: ?Sized> ArgsSchema<T> {
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Self {
            Self(core::marker::PhantomData)
        }
    }

    /// The fallback: no schema is known for this argument type.
    pub trait SchemaUnknown {
        fn args_schema(&self) -> Option<Value> {
            None
        }
    }
    impl<T: ?Sized> SchemaUnknown for &ArgsSchema<T> {}

    /// The schema of an argument type that implements `schemars::JsonSchema`. Method
    /// lookup prefers this impl when the bound holds: on `&ArgsSchema<T>` it matches by
    /// value, while the fallback needs one more reference.
    pub trait SchemaFromJsonSchema {
        fn args_schema(&self) -> Option<Value>;
    }
    #[cfg(feature = "schemars")]
    impl<T: schemars::JsonSchema + ?Sized> SchemaFromJsonSchema for ArgsSchema<T> {
        fn args_schema(&self) -> Option<Value> {
            Some(
                schemars::SchemaGenerator::default()
                    .into_root_schema_for::<T>()
                    .to_value(),
            )
        }
    }

    /// The execution of a job whose payload does not fit its arguments.
    pub fn invalid_payload(
        error: PayloadError,
    ) -> BoxFuture<'static, Result<Value, ExecutionError>> {
        Box::pin(async move { Err(ExecutionError::new(format!("invalid payload: {error}"))) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_args_accepts_null_and_empty_object_only() {
        assert!(deserialize_args::<NoArgs>(&Value::Null).is_ok());
        assert!(deserialize_args::<NoArgs>(&serde_json::json!({})).is_ok());
        let err = deserialize_args::<NoArgs>(&serde_json::json!({"a": 1})).unwrap_err();
        assert!(err.message().contains("takes no arguments"), "{err}");
        assert!(deserialize_args::<NoArgs>(&serde_json::json!(3)).is_err());
    }

    #[test]
    fn execution_result_carries_the_error_display() {
        let out: Result<(), &str> = Err("disk full");
        assert_eq!(
            into_execution_result(out).unwrap_err().message(),
            "disk full"
        );
        assert_eq!(
            into_execution_result(Ok::<_, String>(())).unwrap(),
            Value::Null
        );
    }
}
