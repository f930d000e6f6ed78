use jobs::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Args {
    n: u32,
}

#[job_executor("ArgsFirst")]
async fn args_first(args: Args, ctx: JobContext) -> Result<u32, JobError> {
    ctx.check_cancelled()?;
    Ok(args.n)
}

#[job_executor("ContextFirst")]
async fn context_first(ctx: JobContext, args: Args) -> Result<u32, JobError> {
    ctx.report_progress(50, "half");
    Ok(args.n)
}

#[job_executor("ContextOnly")]
async fn context_only(ctx: jobs::JobContext) -> Result<String, JobError> {
    Ok(ctx.job_id().to_string())
}

#[job_executor("ArgsOnly")]
async fn args_only(Args { n }: Args) -> Result<u32, JobError> {
    Ok(n)
}

fn main() {}
