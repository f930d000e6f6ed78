//! Every route and error code of the HTTP API, with authentication on and off, SSE
//! delivery, and malformed input.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use jobs_http::{router, router_with, HttpOptions};
use jobs_runtime::{
    executor_fn, BoxFuture, ExecutionError, JobContext, JobError, JobExecutor, Jobs, PayloadError,
};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Takes `{"n": <number>}` and doubles it; refuses anything else at submit.
struct Double;

impl JobExecutor for Double {
    fn job_type(&self) -> &str {
        "Double"
    }
    fn validate(&self, payload: &Value) -> Result<(), PayloadError> {
        payload["n"]
            .as_i64()
            .map(drop)
            .ok_or_else(|| PayloadError::new("`n` must be a number"))
    }
    fn execute(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, ExecutionError>> {
        let n = ctx.payload()["n"].as_i64().unwrap_or_default();
        Box::pin(async move { Ok(json!(n * 2)) })
    }
}

/// A service with no workers whose store holds `capacity` events per subscriber.
fn without_workers(capacity: usize) -> Jobs {
    let store = Arc::new(jobs_runtime::memory::InMemoryStore::with_event_capacity(
        capacity,
    ));
    Jobs::builder()
        .discover(false)
        .concurrency(0)
        .store(store)
        .register(Double)
        .start()
        .unwrap()
}

fn jobs() -> Jobs {
    Jobs::builder()
        .discover(false)
        .concurrency(2)
        .register(Double)
        .register(executor_fn("Wait", |ctx| async move {
            ctx.report_progress(10, "waiting");
            ctx.cancelled().await;
            ctx.check_cancelled()
        }))
        .register(
            executor_fn("Fail", |_ctx| async {
                Err::<(), _>(JobError::failed("no luck"))
            })
            .with_args_schema(json!({ "type": "null" })),
        )
        .start()
        .unwrap()
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => {
            if method == "POST" {
                // State-changing requests say they are JSON, as the dashboard's do.
                request = request.header(header::CONTENT_TYPE, "application/json");
            }
            Body::empty()
        }
    };
    send(app, request.body(body).unwrap()).await
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// Reads an event stream's text until `done` holds, with a deadline.
async fn read_stream_until(body: &mut Body, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&text) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("the awaited events did not arrive; got:\n{text}"))
            .expect("the stream stays open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    text
}

/// Reads the job until `done` holds, with a deadline.
async fn until(app: &Router, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, job) = call(app, "GET", &format!("/jobs/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        if done(&job) {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {job}");
        // A client of the REST API polls; the SSE test below shows the push side.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_submitted_job_can_be_read_listed_and_its_result_fetched() {
    let jobs = jobs();
    let app = router(jobs.clone());
    let (status, job) = call(
        &app,
        "POST",
        "/jobs",
        Some(json!({ "type": "Double", "payload": { "n": 21 } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(job["status"], "Queued");
    assert_eq!(job["jobType"], "Double");
    let id = job["id"].as_str().unwrap().to_owned();
    until(&app, &id, |job| job["status"] == "Succeeded").await;
    let (status, result) = call(&app, "GET", &format!("/jobs/{id}/result"), None).await;
    assert_eq!((status, result), (StatusCode::OK, json!({ "result": 42 })));

    let (status, page) = call(
        &app,
        "GET",
        "/jobs?type=Double&status=succeeded&limit=10",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["jobs"][0]["id"], id.as_str());
    assert_eq!(page["nextCursor"], Value::Null);
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_submission_can_carry_run_options() {
    let jobs = Jobs::builder()
        .discover(false)
        .concurrency(0)
        .register(Double)
        .start()
        .unwrap();
    let app = router(jobs.clone());
    let body = json!({
        "type": "Double",
        "payload": { "n": 1 },
        "delayMs": 60_000,
        "priority": 7,
        "retries": 2,
        "timeoutMs": 1_500,
        "uniqueKey": "double-1",
        "queue": "doubles",
        "concurrencyKey": "tenant-7",
        "concurrencyLimit": 2
    });
    let (status, job) = call(&app, "POST", "/jobs", Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["priority"], 7);
    assert_eq!(job["maxAttempts"], 3);
    assert_eq!(job["timeoutMs"], 1_500);
    assert_eq!(job["uniqueKey"], "double-1");
    assert_eq!(job["queue"], "doubles");
    assert_eq!(
        (&job["concurrencyKey"], &job["concurrencyLimit"]),
        (&json!("tenant-7"), &json!(2))
    );
    assert_ne!(job["runAt"], job["createdAt"], "scheduled a minute later");
    let (status, again) = call(&app, "POST", "/jobs", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "nothing created");
    assert_eq!(again["id"], job["id"], "the key is held: the same job");

    let at = json!({ "type": "Double", "payload": { "n": 2 }, "runAt": "2030-01-01T00:00:00Z" });
    let (status, scheduled) = call(&app, "POST", "/jobs", Some(at)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(scheduled["runAt"], "2030-01-01T00:00:00.000000Z");

    let zero = json!({ "type": "Double", "payload": { "n": 3 }, "timeoutMs": 0 });
    let (status, error) = call(&app, "POST", "/jobs", Some(zero)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "invalid_options");
    let no_limit = json!({ "type": "Double", "payload": { "n": 3 }, "concurrencyKey": "k", "concurrencyLimit": 0 });
    let (status, error) = call(&app, "POST", "/jobs", Some(no_limit)).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_options"))
    );
    let both = json!({ "type": "Double", "payload": { "n": 5 }, "delayMs": 10, "runAt": "2030-01-01T00:00:00Z" });
    let (status, error) = call(&app, "POST", "/jobs", Some(both)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "invalid_options");
    let no_such_day =
        json!({ "type": "Double", "payload": { "n": 6 }, "runAt": "2030-02-31T00:00:00Z" });
    let (status, _) = call(&app, "POST", "/jobs", Some(no_such_day)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_time = json!({ "type": "Double", "payload": { "n": 4 }, "runAt": "soon" });
    let (status, error) = call(&app, "POST", "/jobs", Some(bad_time)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["code"], "invalid_body");
    let (_, page) = call(&app, "GET", "/jobs", None).await;
    assert_eq!(
        page["jobs"].as_array().unwrap().len(),
        2,
        "refusals stored nothing"
    );
    jobs.shutdown().await;
}

/// A `traceparent` header puts the submitted job in that trace (`traceParent`, kept by
/// the store); a malformed or repeated one is ignored, as the W3C recommendation asks, and
/// the job is stored without one.
#[tokio::test]
async fn a_traceparent_header_is_kept_with_the_job_and_a_malformed_or_repeated_one_is_ignored() {
    let jobs = without_workers(64);
    let app = router(jobs.clone());
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let submit = |header_value: &'static str| {
        Request::builder()
            .method("POST")
            .uri("/jobs")
            .header(header::CONTENT_TYPE, "application/json")
            .header("traceparent", header_value)
            .body(Body::from(
                json!({ "type": "Double", "payload": { "n": 2 } }).to_string(),
            ))
            .unwrap()
    };
    let (status, job) = send(&app, submit(traceparent)).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["traceParent"], traceparent);
    let (_, read) = call(
        &app,
        "GET",
        &format!("/jobs/{}", job["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(read["traceParent"], traceparent, "stored with the job");

    let (status, job) = send(&app, submit("00-not-a-trace-01")).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["traceParent"], Value::Null);

    // Two traceparent headers: which trace is meant cannot be told, so neither is kept.
    let mut twice = submit(traceparent);
    twice.headers_mut().append(
        "traceparent",
        header::HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    let (status, job) = send(&app, twice).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(
        job["traceParent"],
        Value::Null,
        "a repeated header is ignored"
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn submit_errors_carry_stable_codes_and_store_nothing() {
    let jobs = jobs();
    let app = router(jobs.clone());
    let (status, body) = call(&app, "POST", "/jobs", Some(json!({ "type": "Nope" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unknown_job_type");
    assert_eq!(
        body["error"]["knownTypes"],
        json!(["Double", "Fail", "Wait"])
    );

    // A payload its executor cannot take, and a NUL character no store accepts
    // (PostgreSQL cannot store it): the caller's errors.
    for (payload, says) in [
        (json!({ "n": "x" }), "must be a number"),
        (json!({ "n": 1, "note": "a\u{0}b" }), "NUL character"),
    ] {
        let body = json!({ "type": "Double", "payload": payload });
        let (status, body) = call(&app, "POST", "/jobs", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "invalid_payload");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }

    let (status, body) = call(&app, "POST", "/jobs", Some(json!({ "kind": "Double" }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_body");

    let bad_json = Request::post("/jobs")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, body) = send(&app, bad_json).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );

    let wrong_type = Request::post("/jobs")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(json!({ "type": "Double" }).to_string()))
        .unwrap();
    let (status, body) = send(&app, wrong_type).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    let huge = json!({ "type": "Double", "payload": { "n": 1, "pad": "x".repeat(2 << 20) } });
    let (status, body) = call(&app, "POST", "/jobs", Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "body_too_large");

    let (_, page) = call(&app, "GET", "/jobs", None).await;
    assert_eq!(page["jobs"], json!([]), "nothing was stored");
    jobs.shutdown().await;
}

#[tokio::test]
async fn ids_that_are_not_uuids_or_not_known_are_400_and_404() {
    let jobs = jobs();
    let app = router(jobs.clone());
    for uri in ["/jobs/nope", "/jobs/nope/result", "/jobs/nope/events"] {
        let (status, body) = call(&app, "GET", uri, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_id")),
            "{uri}"
        );
    }
    let (status, _) = call(&app, "POST", "/jobs/nope/cancel", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unknown = jobs_runtime::JobId::new();
    for uri in [
        format!("/jobs/{unknown}"),
        format!("/jobs/{unknown}/result"),
        format!("/jobs/{unknown}/events"),
    ] {
        let (status, body) = call(&app, "GET", &uri, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{uri}"
        );
    }
    let (status, _) = call(&app, "POST", &format!("/jobs/{unknown}/cancel"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(&app, "GET", "/no/such/route", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn listing_rejects_bad_filters() {
    let jobs = jobs();
    let app = router(jobs.clone());
    for uri in [
        "/jobs?status=Done",
        "/jobs?limit=0",
        "/jobs?limit=5000",
        "/jobs?limit=x",
        "/jobs?cursor=zz",
        "/jobs?cursor=",
        "/jobs?status=",
        "/jobs?colour=red",
    ] {
        let (status, body) = call(&app, "GET", uri, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (
                StatusCode::BAD_REQUEST,
                Some(if uri.contains("cursor") {
                    "invalid_id"
                } else {
                    "invalid_query"
                })
            ),
            "{uri}"
        );
    }
    jobs.shutdown().await;
}

#[tokio::test]
async fn result_of_an_unfinished_or_failed_job_is_409_with_its_status() {
    let jobs = jobs();
    let app = router(jobs.clone());
    let (_, job) = call(&app, "POST", "/jobs", Some(json!({ "type": "Wait" }))).await;
    let id = job["id"].as_str().unwrap().to_owned();
    until(&app, &id, |job| job["status"] == "Running").await;
    let (status, body) = call(&app, "GET", &format!("/jobs/{id}/result"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["status"].as_str()
        ),
        (Some("not_succeeded"), Some("Running"))
    );

    let (status, body) = call(&app, "POST", &format!("/jobs/{id}/cancel"), None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "canceled": true, "status": "Running" })
        )
    );
    until(&app, &id, |job| job["status"] == "Canceled").await;
    let (status, body) = call(&app, "POST", &format!("/jobs/{id}/cancel"), None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "canceled": false, "status": "Canceled" })
        )
    );

    let (_, failed) = call(&app, "POST", "/jobs", Some(json!({ "type": "Fail" }))).await;
    let failed = failed["id"].as_str().unwrap().to_owned();
    until(&app, &failed, |job| job["status"] == "Failed").await;
    let (status, body) = call(&app, "GET", &format!("/jobs/{failed}/result"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["jobError"], "no luck");
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_bearer_token_guards_every_route_but_health() {
    let jobs = jobs();
    let app = router_with(jobs.clone(), HttpOptions::new().bearer_token("s3cret"));
    let (status, _) = call(&app, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    for token in [
        None,
        Some("Bearer wrong"),
        Some("s3cret"),
        Some("Basic s3cret"),
    ] {
        let mut request = Request::get("/job-types");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, token);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
    let request = Request::get("/job-types")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["jobTypes"].as_array().unwrap().len(), 3);
    assert_eq!(body["jobTypes"][0]["type"], "Double");
    assert_eq!(
        body["jobTypes"][0]["argsSchema"],
        Value::Null,
        "none declared"
    );
    assert_eq!(body["jobTypes"][1]["type"], "Fail");
    assert_eq!(body["jobTypes"][1]["argsSchema"], json!({ "type": "null" }));
    jobs.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_is_a_page_script_and_style_of_this_origin_served_without_the_token() {
    let jobs = jobs();
    let app = router_with(jobs.clone(), HttpOptions::new().bearer_token("s3cret"));
    let get = |path: &'static str| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    let (status, headers, page) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline"),
        "no inline code allowed: {csp}"
    );
    assert!(page.starts_with("<!doctype html>"));
    // Its script and style come from next to it, and nothing from elsewhere.
    assert!(page.contains(r#"<script src="/dashboard/app.js"></script>"#));
    assert!(page.contains(r#"href="/dashboard/app.css""#));
    for needle in [
        "<script>", "<style", " style=", "http://", "https://", "//cdn", "@import",
    ] {
        assert!(!page.contains(needle), "the page contains `{needle}`");
    }
    let (status, headers, script) = get("/dashboard/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(script.contains("async function start()"));
    let (status, headers, style) = get("/dashboard/app.css").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(!style.contains("@import"));
    // The data behind it still needs the token.
    let (status, _) = call(&app, "GET", "/jobs", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    jobs.shutdown().await;
}

#[tokio::test]
async fn events_of_a_job_arrive_as_server_sent_events() {
    let jobs = jobs();
    let app = router(jobs.clone());
    let (_, job) = call(&app, "POST", "/jobs", Some(json!({ "type": "Wait" }))).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let response = app
        .clone()
        .oneshot(
            Request::get(format!("/jobs/{id}/events"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    until(&app, &id, |job| job["status"] == "Running").await;
    call(&app, "POST", &format!("/jobs/{id}/cancel"), None).await;
    let text = read_stream_until(&mut body, |text| text.contains("event: finished")).await;
    assert!(text.contains("event: cancelRequested"), "{text}");
    assert!(text.contains(&format!("\"id\":\"{id}\"")), "{text}");
    assert!(text.contains("\"status\":\"Canceled\""), "{text}");
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_client_that_falls_behind_is_told_it_missed_events() {
    // Room for two events only, and no workers: the submits below overflow it.
    let jobs = without_workers(2);
    let app = router(jobs.clone());
    let response = app
        .clone()
        .oneshot(Request::get("/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    for n in 0..10 {
        jobs.submit_job_with("Double", json!({ "n": n }))
            .await
            .unwrap();
    }
    let text = read_stream_until(&mut body, |text| {
        text.matches("event: submitted").count() >= 2
    })
    .await;
    // The notice comes first, with how many were skipped, then the events still held.
    let lagged = text
        .find("event: lagged\ndata: {\"missed\":8}")
        .expect(&text);
    assert!(lagged < text.find("event: submitted").unwrap(), "{text}");
    jobs.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_the_router_serves() {
    let jobs = jobs();
    let app = router_with(jobs.clone(), HttpOptions::new().bearer_token("t"));
    let (status, doc) = call(&app, "GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK, "served without the token");
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let id = jobs_runtime::JobId::new().to_string();
    let mut described = 0;
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            described += 1;
            let uri = path.replace("{id}", &id).replace("{queue}", "default");
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::AUTHORIZATION, "Bearer t")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let code = response.status().as_u16().to_string();
            // Every documented route exists (no fallback 404 without a documented 404),
            // and the status it answered is among the documented ones.
            assert!(
                operation["responses"].get(&code).is_some(),
                "{method} {path} answered {code}, which the document does not list"
            );
        }
    }
    assert_eq!(described, 23, "every route is described");
    // A submission names one of the catalog's types, each with its payload's schema.
    let variants = doc["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["oneOf"]
        .as_array()
        .unwrap();
    let types: Vec<&Value> = variants
        .iter()
        .map(|variant| &variant["properties"]["type"]["enum"][0])
        .collect();
    assert_eq!(types, [&json!("Double"), &json!("Fail"), &json!("Wait")]);
    assert_eq!(
        variants[1]["properties"]["payload"],
        json!({ "type": "null" }),
        "the declared schema"
    );
    // Each carries the dependencies, with every source a job's arguments may come from.
    let sources = json!(["submitted", "parent", "parents", "batch"]);
    assert_eq!(variants[0]["properties"]["payloadFrom"]["enum"], sources);
    assert_eq!(
        doc["components"]["schemas"]["Job"]["properties"]["payloadFrom"]["enum"],
        sources
    );
    for field in ["dependsOn", "onParentFailure", "flow"] {
        assert!(variants[0]["properties"].get(field).is_some(), "{field}");
    }
    jobs.shutdown().await;
}

#[tokio::test]
async fn metrics_count_jobs_by_type_and_status_and_time_executions() {
    let jobs = jobs();
    let app = router(jobs.clone());
    let (_, done) = call(
        &app,
        "POST",
        "/jobs",
        Some(json!({ "type": "Double", "payload": { "n": 1 } })),
    )
    .await;
    let done = done["id"].as_str().unwrap().to_owned();
    until(&app, &done, |job| job["status"] == "Succeeded").await;
    let (_, waiting) = call(&app, "POST", "/jobs", Some(json!({ "type": "Wait" }))).await;
    let waiting = waiting["id"].as_str().unwrap().to_owned();
    until(&app, &waiting, |job| job["status"] == "Running").await;

    let response = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4"
    );
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for line in [
        "jobs{type=\"Double\",status=\"Succeeded\"} 1",
        "jobs{type=\"Wait\",status=\"Running\"} 1",
        "jobs_queue_depth 0",
        "jobs_execution_duration_seconds_count{type=\"Double\",status=\"Succeeded\"} 1",
        "jobs_execution_duration_seconds_bucket{type=\"Double\",status=\"Succeeded\",le=\"+Inf\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    assert!(
        !text.contains("type=\"Wait\",status=\"Canceled\""),
        "no execution of Wait finished yet"
    );
    call(&app, "POST", &format!("/jobs/{waiting}/cancel"), None).await;
    jobs.shutdown().await;
}

/// Reads the whole stream until it ends, with a deadline.
async fn read_stream_to_end(body: &mut Body) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("the stream did not end; got:\n{text}"));
        match frame {
            None => return text,
            Some(frame) => {
                if let Ok(data) = frame.unwrap().into_data() {
                    text.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
        }
    }
}

async fn open_stream(app: &Router, uri: &str) -> axum::response::Response {
    app.clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_stream_ends_after_its_finished_event_and_a_finished_job_gets_it_at_once() {
    let jobs = jobs();
    let app = router(jobs.clone());
    let (_, job) = call(&app, "POST", "/jobs", Some(json!({ "type": "Wait" }))).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let mut body = open_stream(&app, &format!("/jobs/{id}/events"))
        .await
        .into_body();
    until(&app, &id, |job| job["status"] == "Running").await;
    call(&app, "POST", &format!("/jobs/{id}/cancel"), None).await;
    let text = read_stream_to_end(&mut body).await;
    assert!(text.trim_end().ends_with("}"), "{text}");
    let last = text.rsplit("event: ").next().unwrap();
    assert!(
        last.starts_with("finished"),
        "the last event is finished: {text}"
    );
    assert!(last.contains("\"status\":\"Canceled\""), "{text}");

    // The job has finished: a new stream says so and ends.
    let mut again = open_stream(&app, &format!("/jobs/{id}/events"))
        .await
        .into_body();
    let text = read_stream_to_end(&mut again).await;
    assert_eq!(text.matches("event: ").count(), 1, "{text}");
    assert!(text.contains("event: finished"), "{text}");
    jobs.shutdown().await;
}

#[tokio::test]
async fn event_streams_end_with_a_last_event_when_shutdown_begins() {
    // No workers: the job stays queued, so only the shutdown can end its stream.
    let jobs = Jobs::builder()
        .discover(false)
        .concurrency(0)
        .register(executor_fn("Wait", |ctx| async move {
            ctx.cancelled().await;
            ctx.check_cancelled()
        }))
        .start()
        .unwrap();
    let app = router(jobs.clone());
    let (_, job) = call(&app, "POST", "/jobs", Some(json!({ "type": "Wait" }))).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let mut all = open_stream(&app, "/events").await.into_body();
    let mut one = open_stream(&app, &format!("/jobs/{id}/events"))
        .await
        .into_body();
    let stopping = tokio::spawn({
        let jobs = jobs.clone();
        async move { jobs.shutdown().await }
    });
    for body in [&mut all, &mut one] {
        let text = read_stream_to_end(body).await;
        assert!(
            text.contains("event: shutdown") && text.contains("shutting down"),
            "{text}"
        );
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn streams_beyond_the_cap_are_refused_with_503_until_one_closes() {
    let jobs = jobs();
    let app = router_with(jobs.clone(), HttpOptions::new().max_streams(1));
    let first = open_stream(&app, "/events").await;
    assert_eq!(first.status(), StatusCode::OK);
    let refused = open_stream(&app, "/events").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "too_many_streams", "{error}");
    drop(first);
    let after = open_stream(&app, "/events").await;
    assert_eq!(
        after.status(),
        StatusCode::OK,
        "a closed stream frees its slot"
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_cross_site_form_cannot_cancel_a_job() {
    let jobs = jobs();
    let app = router(jobs.clone());
    let (_, job) = call(&app, "POST", "/jobs", Some(json!({ "type": "Wait" }))).await;
    let id = job["id"].as_str().unwrap().to_owned();
    until(&app, &id, |job| job["status"] == "Running").await;
    // What an HTML form on another site sends (no custom headers, no JSON).
    for content_type in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ] {
        let mut request = Request::post(format!("/jobs/{id}/cancel"));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let (status, body) = send(&app, request.body(Body::from("x=1")).unwrap()).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {body}"
        );
        assert_eq!(body["error"]["code"], "json_required");
    }
    let (_, still) = call(&app, "GET", &format!("/jobs/{id}"), None).await;
    assert_eq!(still["status"], "Running", "nothing changed: {still}");
    assert_eq!(still["cancelRequested"], false);
    let (status, _) = call(&app, "POST", &format!("/jobs/{id}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK, "a JSON request cancels");
    jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stream_is_not_pushed_behind_by_other_jobs_events() {
    // Room for 64 events, no workers: 300 other jobs' events pass while the job's
    // stream is not read. A stream reading every job's events would fall behind and
    // report `lagged`; a job's stream gets its job's events alone.
    let jobs = without_workers(64);
    let app = router(jobs.clone());
    let (_, job) = call(
        &app,
        "POST",
        "/jobs",
        Some(json!({ "type": "Double", "payload": { "n": 1 } })),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let mut body = open_stream(&app, &format!("/jobs/{id}/events"))
        .await
        .into_body();
    for _ in 0..15 {
        let batch: Vec<_> = (0..20)
            .map(|n| jobs.prepare_job("Double", json!({ "n": n })).unwrap())
            .collect();
        // Paced by the service's own dispatch: each batch is handed out before the next.
        let mut last = jobs.watch_job(batch.last().unwrap().id);
        jobs.submit_many(batch).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), last.recv())
            .await
            .expect("the batch's events were dispatched");
    }
    call(&app, "POST", &format!("/jobs/{id}/cancel"), None).await;
    let text = read_stream_to_end(&mut body).await;
    assert!(!text.contains("event: lagged"), "{text}");
    assert_eq!(text.matches("event: ").count(), 1, "{text}");
    assert!(text.contains("event: finished"), "{text}");
    jobs.shutdown().await;
}

/// A request for `uri` naming `host`, with `token` if given.
fn for_host(method: &str, uri: &str, host: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = if method == "POST" {
        Body::from(json!({ "type": "Double", "payload": { "n": 1 } }).to_string())
    } else {
        Body::empty()
    };
    request.body(body).unwrap()
}

#[tokio::test]
async fn without_a_token_only_loopback_hosts_are_served_against_dns_rebinding() {
    let jobs = jobs();
    let app = router(jobs.clone());
    // A page on evil.example that rebinds its name to 127.0.0.1 still sends its name.
    for (method, uri) in [
        ("GET", "/"),
        ("GET", "/jobs"),
        ("POST", "/jobs"),
        ("GET", "/events"),
    ] {
        let (status, body) = send(&app, for_host(method, uri, "evil.example:8080", None)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
        assert_eq!(body["error"]["code"], "host_not_allowed", "{body}");
    }
    // Nothing was stored by the refused submit.
    let (_, page) = call(&app, "GET", "/jobs", None).await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 0, "{page}");
    for host in [
        "localhost:8080",
        "127.0.0.1:8080",
        "[::1]:8080",
        "LOCALHOST",
    ] {
        let (status, body) = send(&app, for_host("GET", "/jobs", host, None)).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }
    let (status, _) = send(&app, for_host("GET", "/health", "evil.example", None)).await;
    assert_eq!(status, StatusCode::OK, "health answers any host");

    // With a token any host is served (the token is what protects it) ...
    let guarded = router_with(jobs.clone(), HttpOptions::new().bearer_token("s3cret"));
    let (status, body) = send(
        &guarded,
        for_host("GET", "/jobs", "jobs.example.com", Some("s3cret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ... and a list of hosts applies with or without one.
    let listed = router_with(
        jobs.clone(),
        HttpOptions::new().allowed_hosts(["jobs.internal"]),
    );
    let (status, _) = send(&listed, for_host("GET", "/jobs", "jobs.internal:80", None)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&listed, for_host("GET", "/jobs", "localhost", None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    jobs.shutdown().await;
}

/// The state the job `id` is in once it has finished.
async fn finished(jobs: &Jobs, id: &Value) -> jobs_runtime::Job {
    let id: jobs_runtime::JobId = id.as_str().unwrap().parse().unwrap();
    tokio::time::timeout(Duration::from_secs(10), jobs.wait_for(id))
        .await
        .expect("the job finishes")
        .unwrap()
}

#[tokio::test]
async fn operators_retry_delete_and_act_in_bulk_with_clear_refusals() {
    let jobs = jobs();
    let app = router(jobs.clone());
    let (_, failed) = call(&app, "POST", "/jobs", Some(json!({ "type": "Fail" }))).await;
    let failed_id = failed["id"].clone();
    assert_eq!(finished(&jobs, &failed_id).await.attempt, 1);
    let retry = format!("/jobs/{}/retry", failed_id.as_str().unwrap());

    // A retry must say it is JSON, as every state-changing POST.
    let request = Request::post(&retry).body(Body::empty()).unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "json_required");
    let (status, job) = call(&app, "POST", &retry, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(
        (job["status"].as_str(), job["attempt"].as_u64()),
        (Some("Queued"), Some(1))
    );
    let again = finished(&jobs, &failed_id).await;
    assert_eq!(
        (again.status, again.attempt, again.errors.len()),
        (jobs_runtime::JobStatus::Failed, 2, 2),
        "the retry ran a second attempt and kept the first one's error"
    );

    let (_, double) = call(
        &app,
        "POST",
        "/jobs",
        Some(json!({ "type": "Double", "payload": { "n": 2 } })),
    )
    .await;
    let double_id = double["id"].as_str().unwrap().to_owned();
    finished(&jobs, &double["id"]).await;
    let (status, body) = call(&app, "POST", &format!("/jobs/{double_id}/retry"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["status"].as_str()
        ),
        (Some("not_retryable"), Some("Succeeded"))
    );
    let unknown = jobs_runtime::JobId::new();
    let (status, _) = call(&app, "POST", &format!("/jobs/{unknown}/retry"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delete: only finished jobs, with their results.
    let (_, wait) = call(&app, "POST", "/jobs", Some(json!({ "type": "Wait" }))).await;
    let wait_id = wait["id"].as_str().unwrap().to_owned();
    until(&app, &wait_id, |job| job["status"] == "Running").await;
    let (status, body) = call(&app, "DELETE", &format!("/jobs/{wait_id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "not_finished");
    let (status, _) = call(&app, "DELETE", &format!("/jobs/{double_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, "GET", &format!("/jobs/{double_id}/result"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the result went with it");
    let (status, _) = call(&app, "DELETE", &format!("/jobs/{double_id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(&app, "DELETE", "/jobs/not-an-id", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_id"))
    );

    // Queues and the queue filter.
    let (status, queues) = call(&app, "GET", "/queues", None).await;
    assert_eq!(status, StatusCode::OK);
    let default = &queues["queues"][0];
    assert_eq!(default["queue"], "default");
    assert_eq!(default["running"], 1, "the waiting job");
    assert_eq!(default["workers"][0]["concurrency"], 2, "{queues}");
    assert_eq!(default["workers"][0]["pid"], std::process::id());
    let (_, listed) = call(&app, "GET", "/jobs?queue=default", None).await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2);
    let (_, listed) = call(&app, "GET", "/jobs?queue=elsewhere", None).await;
    assert!(listed["jobs"].as_array().unwrap().is_empty());

    // Throughput: the minute under way holds this test's finishes.
    let (status, series) = call(&app, "GET", "/throughput?minutes=5", None).await;
    assert_eq!(status, StatusCode::OK);
    let minutes = series["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 5);
    let total = |key: &str| {
        minutes
            .iter()
            .map(|m| m[key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((total("succeeded"), total("failed")), (1, 2));
    for bad in [
        "/throughput?minutes=0",
        "/throughput?minutes=1441",
        "/throughput?minutes=x",
        "/throughput?hours=1",
    ] {
        let (status, body) = call(&app, "GET", bad, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query")),
            "{bad}"
        );
    }

    // Bulk: a dry run counts and changes nothing; then the action.
    let bulk = |action: &str, filter: Value, dry_run: bool| json!({ "action": action, "filter": filter, "dryRun": dry_run });
    let (status, report) = call(
        &app,
        "POST",
        "/jobs/bulk",
        Some(bulk("delete", json!({ "status": "Failed" }), true)),
    )
    .await;
    assert_eq!(
        (status, report.clone()),
        (StatusCode::OK, json!({ "matched": 1, "changed": 0 }))
    );
    assert!(jobs
        .get_job(failed_id.as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .is_some());
    let (_, report) = call(
        &app,
        "POST",
        "/jobs/bulk",
        Some(bulk("cancel", json!({ "type": "Wait" }), false)),
    )
    .await;
    assert_eq!(report, json!({ "matched": 1, "changed": 1 }));
    assert_eq!(
        finished(&jobs, &wait["id"]).await.status,
        jobs_runtime::JobStatus::Canceled
    );
    let (_, report) = call(
        &app,
        "POST",
        "/jobs/bulk",
        Some(bulk("delete", json!({}), false)),
    )
    .await;
    assert_eq!(
        report,
        json!({ "matched": 2, "changed": 2 }),
        "every finished job"
    );
    assert!(jobs
        .list_jobs(jobs_runtime::JobQuery::new())
        .await
        .unwrap()
        .jobs
        .is_empty());
    for (body, code) in [
        (bulk("explode", json!({}), false), "invalid_body"),
        (json!({ "action": "retry" }), "invalid_body"),
        (
            bulk("retry", json!({ "status": "Bogus" }), false),
            "invalid_body",
        ),
        (
            bulk("retry", json!({ "colour": "red" }), false),
            "invalid_body",
        ),
    ] {
        let (status, answer) = call(&app, "POST", "/jobs/bulk", Some(body.clone())).await;
        assert!(status.is_client_error(), "{body}: {status}");
        assert_eq!(answer["error"]["code"], code, "{body}");
    }
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_paused_queue_holds_its_jobs_until_resumed_and_says_so() {
    let jobs = Jobs::builder()
        .discover(false)
        .concurrency(1)
        .serve_queue("other", 1)
        .register(Double)
        .start()
        .unwrap();
    let app = router(jobs.clone());
    let mut events = open_stream(&app, "/events").await.into_body();

    // Like every state-changing POST, a pause must say it is JSON.
    let request = Request::post("/queues/default/pause")
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("json_required"))
    );
    let (status, body) = call(&app, "POST", "/queues/default/pause", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "queue": "default", "paused": true, "changed": true })
    );
    let (_, body) = call(&app, "POST", "/queues/default/pause", None).await;
    assert_eq!(body["changed"], false, "it was paused already");
    let (status, body) = call(&app, "POST", "/queues/no%20spaces/pause", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_queue"))
    );

    let submit = |queue: &str| json!({ "type": "Double", "payload": { "n": 1 }, "queue": queue });
    let (_, held) = call(&app, "POST", "/jobs", Some(submit("default"))).await;
    let (_, served) = call(&app, "POST", "/jobs", Some(submit("other"))).await;
    // The other queue's job runs to the end while the paused queue's job waits.
    finished(&jobs, &served["id"]).await;
    let held_id = held["id"].as_str().unwrap().to_owned();
    let (_, job) = call(&app, "GET", &format!("/jobs/{held_id}"), None).await;
    assert_eq!(job["status"], "Queued", "{job}");
    assert_eq!(
        job["waitingOn"],
        json!({ "limit": "paused", "reason": "queue default paused" })
    );
    let text = scrape(&app).await;
    assert!(
        text.contains("jobs_waiting_on_limit{limit=\"paused\",queue=\"default\"} 1\n"),
        "{text}"
    );
    assert!(
        !text.contains("jobs_unserved_queue_jobs{queue=\"default\"}"),
        "a served queue, paused or not, is served: {text}"
    );
    let (_, queues) = call(&app, "GET", "/queues", None).await;
    let default = &queues["queues"][0];
    assert_eq!(default["queue"], "default");
    assert!(default["pausedSince"].is_string(), "{queues}");
    assert!(queues["queues"][1]["pausedSince"].is_null(), "{queues}");

    let (status, body) = call(&app, "POST", "/queues/default/resume", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["changed"], true);
    assert_eq!(
        finished(&jobs, &held["id"]).await.status,
        jobs_runtime::JobStatus::Succeeded
    );
    let (_, job) = call(&app, "GET", &format!("/jobs/{held_id}"), None).await;
    assert!(
        job["waitingOn"].is_null(),
        "a finished job waits for nothing: {job}"
    );
    let (_, body) = call(&app, "POST", "/queues/default/resume", None).await;
    assert_eq!(body["changed"], false, "it was running already");
    let text = read_stream_until(&mut events, |text| text.contains("event: queueResumed")).await;
    let paused = text
        .find("event: queuePaused\ndata: {\"event\":\"queuePaused\",\"queue\":\"default\"}")
        .expect(&text);
    assert!(paused < text.find("event: queueResumed").unwrap(), "{text}");
    assert_eq!(
        text.matches("event: queuePaused").count(),
        1,
        "one event per change: {text}"
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_full_store_answers_503_with_retry_after_and_stores_nothing() {
    let store = Arc::new(jobs_runtime::memory::InMemoryStore::new().with_max_active_jobs(1));
    let jobs = Jobs::builder()
        .discover(false)
        .concurrency(0)
        .store(store.clone())
        .register(Double)
        .start()
        .unwrap();
    let app = router(jobs.clone());
    let body = json!({ "type": "Double", "payload": { "n": 1 } });
    let (status, _) = call(&app, "POST", "/jobs", Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let request = Request::post("/jobs")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error["error"]["code"], "store_full");
    assert_eq!(store.len(), 1, "nothing stored");
    jobs.shutdown().await;
}

/// Reads `/metrics` as text.
async fn scrape(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn metrics_read_the_store_at_most_once_per_cache_period() {
    let jobs = without_workers(16);
    let submit = || json!({ "type": "Double", "payload": { "n": 1 } });
    let cached = router_with(
        jobs.clone(),
        HttpOptions::new().metrics_cache(Duration::from_secs(3_600)),
    );
    let fresh = router_with(
        jobs.clone(),
        HttpOptions::new().metrics_cache(Duration::ZERO),
    );
    call(&cached, "POST", "/jobs", Some(submit())).await;
    let line = |n: u32| format!("jobs{{type=\"Double\",status=\"Queued\"}} {n}\n");
    assert!(scrape(&cached).await.contains(&line(1)));
    call(&cached, "POST", "/jobs", Some(submit())).await;
    assert!(
        scrape(&cached).await.contains(&line(1)),
        "within the period the figures read before are served"
    );
    assert!(
        scrape(&fresh).await.contains(&line(2)),
        "no cache: read each time"
    );
    jobs.shutdown().await;
}

/// The routes `router_with` declares, as (path, method) pairs, read from its source: the
/// `.route("path", get(..).post(..))` calls.
fn declared_routes() -> std::collections::BTreeSet<(String, String)> {
    let source = include_str!("../src/lib.rs");
    let mut routes = std::collections::BTreeSet::new();
    for line in source.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix(".route(\"") else {
            continue;
        };
        let (path, handlers) = rest.split_once('"').expect("a quoted path");
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = handlers
                .match_indices(&format!("{method}("))
                .any(|(at, _)| at == 0 || !handlers.as_bytes()[at - 1].is_ascii_alphanumeric());
            if called {
                routes.insert((path.to_owned(), method.to_owned()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_in_the_router_is_in_the_openapi_document_and_nothing_else_is() {
    let jobs = jobs();
    let app = router(jobs.clone());
    let (_, doc) = call(&app, "GET", "/openapi.json", None).await;
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (path.clone(), method.clone()))
        })
        .collect();
    let declared = declared_routes();
    assert!(declared.len() >= 20, "the source was read: {declared:?}");
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not documented: {undocumented:?}; documented but not routed: {unrouted:?}"
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn metrics_parse_as_the_prometheus_text_format() {
    let jobs = jobs();
    let app = router(jobs.clone());
    for payload in [
        json!({ "type": "Double", "payload": { "n": 1 } }),
        json!({ "type": "Fail" }),
    ] {
        let (_, job) = call(&app, "POST", "/jobs", Some(payload)).await;
        let id = job["id"].as_str().unwrap().to_owned();
        until(&app, &id, |job| {
            job["status"] == "Succeeded" || job["status"] == "Failed"
        })
        .await;
    }
    let text = scrape(&app).await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .expect("parses");
    // Every sample line was understood (buckets are folded into one sample per series).
    let lines = text
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .count();
    let buckets = text
        .lines()
        .filter(|line| line.contains("_bucket{"))
        .count();
    let histogram_series = scrape
        .samples
        .iter()
        .filter(|sample| matches!(sample.value, prometheus_parse::Value::Histogram(_)))
        .count();
    assert!(histogram_series >= 2, "both executions are timed:\n{text}");
    assert_eq!(
        scrape.samples.len(),
        lines - buckets + histogram_series,
        "a line the parser skipped:\n{text}"
    );
    for sample in &scrape.samples {
        let family = sample
            .metric
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            scrape.docs.contains_key(family),
            "`{}` has no HELP:\n{text}",
            sample.metric
        );
        assert!(
            !matches!(sample.value, prometheus_parse::Value::Untyped(_))
                || sample.metric.ends_with("_sum")
                || sample.metric.ends_with("_count"),
            "`{}` has no TYPE:\n{text}",
            sample.metric
        );
        if let prometheus_parse::Value::Histogram(buckets) = &sample.value {
            let counts: Vec<f64> = buckets.iter().map(|bucket| bucket.count).collect();
            assert!(
                counts.windows(2).all(|w| w[0] <= w[1]),
                "cumulative: {counts:?}"
            );
            assert_eq!(buckets.last().unwrap().less_than, f64::INFINITY);
        }
    }
    jobs.shutdown().await;
}

/// A service for workflows: `Double` (`{"n"}` → 2n), `Inc` (a number → its successor) and
/// `Echo` (answers its payload), with `workers` workers.
fn flow_jobs(workers: usize) -> Jobs {
    Jobs::builder()
        .discover(false)
        .concurrency(workers)
        .register(Double)
        .register(executor_fn("Inc", |ctx| async move {
            let n = ctx.payload().as_i64().ok_or_else(|| {
                JobError::permanent(format!("Inc takes a number, not {}", ctx.payload()))
            })?;
            Ok::<_, JobError>(n + 1)
        }))
        .register(executor_fn("Echo", |ctx| async move {
            Ok::<_, JobError>(ctx.payload().clone())
        }))
        .start()
        .unwrap()
}

/// Submits `body` and answers the new job's id, checking it was created.
async fn submit_id(app: &Router, body: Value) -> String {
    let (status, job) = call(app, "POST", "/jobs", Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}: {job}");
    job["id"].as_str().unwrap().to_owned()
}

/// Reads the flow until `done` holds, with a deadline.
async fn flow_until(app: &Router, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, flow) = call(app, "GET", &format!("/flows/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{flow}");
        if done(&flow) {
            return flow;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {flow}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_chain_submitted_by_ids_runs_each_step_with_its_parents_results() {
    let jobs = flow_jobs(2);
    let app = router(jobs.clone());
    let flow = jobs_runtime::FlowId::new().to_string();
    // double → inc, and both → echo (their results in order) and → a batch summary.
    let double = submit_id(
        &app,
        json!({ "type": "Double", "payload": { "n": 5 }, "flow": flow }),
    )
    .await;
    let inc = submit_id(
        &app,
        json!({ "type": "Inc", "dependsOn": [double], "payloadFrom": "parent", "flow": flow }),
    )
    .await;
    let both = submit_id(
        &app,
        json!({ "type": "Echo", "dependsOn": [double, inc], "payloadFrom": "parents", "flow": flow }),
    )
    .await;
    let summary = submit_id(
        &app,
        json!({
            "type": "Echo", "dependsOn": [double, inc], "payloadFrom": "batch",
            "onParentFailure": "run", "flow": flow
        }),
    )
    .await;

    let view = flow_until(&app, &flow, |view| view["counts"]["finished"] == 4).await;
    let result = |id: &str| {
        let app = app.clone();
        let uri = format!("/jobs/{id}/result");
        async move { call(&app, "GET", &uri, None).await.1["result"].clone() }
    };
    assert_eq!(
        result(&inc).await,
        json!(11),
        "inc ran with double's result"
    );
    assert_eq!(result(&both).await, json!([10, 11]), "in the order named");
    let batch = result(&summary).await;
    assert_eq!(
        (&batch["counts"]["total"], &batch["counts"]["succeeded"]),
        (&json!(2), &json!(2)),
        "{batch}"
    );
    assert_eq!(batch["succeeded"], json!([double, inc]));

    assert_eq!(view["id"], flow.as_str());
    let members: Vec<&str> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(members, [&double, &inc, &both, &summary], "in submit order");
    assert!(view["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|job| job["status"] == "Succeeded" && job["flow"] == flow.as_str()));
    let edge = |parent: &str, child: &str| json!({ "parent": parent, "child": child });
    assert_eq!(
        view["edges"],
        json!([
            edge(&double, &inc),
            edge(&double, &both),
            edge(&inc, &both),
            edge(&double, &summary),
            edge(&inc, &summary)
        ])
    );
    assert_eq!(
        view["counts"],
        json!({
            "total": 4, "finished": 4, "waiting": 0, "queued": 0, "running": 0,
            "succeeded": 4, "failed": 0, "canceled": 0
        })
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_job_links_to_its_parents_and_its_children() {
    let jobs = flow_jobs(0);
    let app = router(jobs.clone());
    let root = submit_id(&app, json!({ "type": "Double", "payload": { "n": 1 } })).await;
    let left = submit_id(
        &app,
        json!({ "type": "Inc", "dependsOn": [root], "payloadFrom": "parent" }),
    )
    .await;
    let right = submit_id(
        &app,
        json!({ "type": "Double", "payload": { "n": 2 }, "dependsOn": [root] }),
    )
    .await;
    let join = submit_id(
        &app,
        json!({ "type": "Echo", "dependsOn": [right, left], "payloadFrom": "parents" }),
    )
    .await;
    let read = |id: &str| {
        let app = app.clone();
        let uri = format!("/jobs/{id}");
        async move { call(&app, "GET", &uri, None).await.1 }
    };
    let job = read(&root).await;
    assert_eq!(
        (&job["parents"], &job["children"], &job["status"]),
        (&json!([]), &json!([left, right]), &json!("Queued"))
    );
    let job = read(&join).await;
    assert_eq!(
        (&job["parents"], &job["children"], &job["status"]),
        (&json!([right, left]), &json!([]), &json!("Waiting")),
        "parents in the order named"
    );
    assert_eq!(job["dependsOn"], job["parents"]);
    assert_eq!(
        (&job["payloadFrom"], &job["onParentFailure"], &job["flow"]),
        (&json!("parents"), &json!("cancel"), &Value::Null)
    );
    assert_eq!(read(&left).await["children"], json!([join]));
    jobs.shutdown().await;
}

#[tokio::test]
async fn dependencies_over_http_are_checked_and_an_unknown_parent_is_409() {
    let jobs = flow_jobs(0);
    let app = router(jobs.clone());
    let parent = submit_id(&app, json!({ "type": "Double", "payload": { "n": 1 } })).await;
    let other = submit_id(&app, json!({ "type": "Double", "payload": { "n": 2 } })).await;

    let unknown = jobs_runtime::JobId::new().to_string();
    let body = json!({ "type": "Inc", "dependsOn": [parent, unknown], "payloadFrom": "parents" });
    let (status, answer) = call(&app, "POST", "/jobs", Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "unknown_parent");
    assert_eq!(answer["error"]["parent"], unknown.as_str());

    // Values of the wrong shape, `null` among them, are the body's errors; the choices
    // are named.
    for (body, says) in [
        (json!({ "dependsOn": ["nope"] }), "UUID"),
        (json!({ "dependsOn": null }), "null"),
        (json!({ "dependsOn": parent }), "sequence"),
        (
            json!({ "onParentFailure": "sometimes" }),
            "expected `cancel` or `run`",
        ),
        (json!({ "onParentFailure": null }), "null"),
        (json!({ "payloadFrom": "elsewhere" }), "`parents`"),
        (json!({ "flow": "nope" }), "UUID"),
        (json!({ "flow": null }), "null"),
    ] {
        let mut body = body;
        body["type"] = json!("Double");
        body["payload"] = json!({ "n": 1 });
        let (status, answer) = call(&app, "POST", "/jobs", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_body", "{body}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }

    // Options that cannot go together.
    for (body, says) in [
        (
            json!({ "type": "Inc", "dependsOn": [parent, other], "payloadFrom": "parent" }),
            "exactly one parent",
        ),
        (
            json!({ "type": "Inc", "payloadFrom": "parents" }),
            "needs parents",
        ),
        (
            json!({ "type": "Inc", "dependsOn": [parent], "payloadFrom": "parent", "payload": 1 }),
            "leave out the payload",
        ),
        (
            json!({ "type": "Inc", "dependsOn": [parent], "payloadFrom": "parent", "payload": null }),
            "leave out the payload",
        ),
        (
            json!({ "type": "Echo", "dependsOn": [parent], "payloadFrom": "batch" }),
            "on_parent_failure",
        ),
        (
            json!({ "type": "Echo", "dependsOn": [parent, parent] }),
            "named twice",
        ),
        (
            json!({ "type": "Echo", "dependsOn": [parent], "uniqueKey": "k" }),
            "unique key",
        ),
    ] {
        let (status, answer) = call(&app, "POST", "/jobs", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_options", "{body}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }

    // Without parents the dependency options change nothing that matters.
    let alone = json!({ "type": "Echo", "dependsOn": [], "onParentFailure": "run", "payloadFrom": "submitted" });
    let (status, job) = call(&app, "POST", "/jobs", Some(alone)).await;
    assert_eq!(
        (status, &job["status"]),
        (StatusCode::CREATED, &json!("Queued"))
    );

    let (_, page) = call(&app, "GET", "/jobs", None).await;
    assert_eq!(
        page["jobs"].as_array().unwrap().len(),
        3,
        "the refusals stored nothing"
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_flow_is_read_with_its_counts_and_canceled_whole() {
    let jobs = flow_jobs(0);
    let app = router_with(jobs.clone(), HttpOptions::new().bearer_token("t"));
    let authorized = |method: &str, uri: &str, body: Option<Value>| {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, "Bearer t");
        if body.is_some() || method == "POST" {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
        send(&app, request.body(body).unwrap())
    };
    let flow = jobs_runtime::FlowId::new().to_string();
    let (_, first) = authorized(
        "POST",
        "/jobs",
        Some(json!({ "type": "Double", "payload": { "n": 1 }, "flow": flow })),
    )
    .await;
    let (_, second) = authorized(
        "POST",
        "/jobs",
        Some(json!({ "type": "Inc", "dependsOn": [first["id"]], "payloadFrom": "parent", "flow": flow })),
    )
    .await;
    assert_eq!(second["status"], "Waiting");

    let (status, view) = authorized("GET", &format!("/flows/{flow}"), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (&view["counts"]["finished"], &view["counts"]["total"]),
        (&json!(0), &json!(2)),
        "0 of 2 finished"
    );
    assert_eq!(
        (&view["counts"]["queued"], &view["counts"]["waiting"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(view["members"][1]["status"], "Waiting");

    // The flow's routes are the operator's: behind the token, and a cancel says it is JSON.
    let (status, _) = call(&app, "GET", &format!("/flows/{flow}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let request = Request::post(format!("/flows/{flow}/cancel"))
        .header(header::AUTHORIZATION, "Bearer t")
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("json_required"))
    );

    let (status, report) = authorized("POST", &format!("/flows/{flow}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report,
        json!({ "members": 2, "canceled": 2, "stopRequested": 0 })
    );
    let (_, view) = authorized("GET", &format!("/flows/{flow}"), None).await;
    assert_eq!(
        (&view["counts"]["finished"], &view["counts"]["canceled"]),
        (&json!(2), &json!(2)),
        "{view}"
    );
    let (_, report) = authorized("POST", &format!("/flows/{flow}/cancel"), None).await;
    assert_eq!(report["canceled"], 0, "nothing left to cancel");

    let unknown = jobs_runtime::FlowId::new();
    for (method, uri) in [
        ("GET", format!("/flows/{unknown}")),
        ("POST", format!("/flows/{unknown}/cancel")),
    ] {
        let (status, body) = authorized(method, &uri, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{method} {uri}"
        );
    }
    for (method, uri) in [("GET", "/flows/nope"), ("POST", "/flows/nope/cancel")] {
        let (status, body) = authorized(method, uri, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_id")),
            "{method} {uri}"
        );
    }
    jobs.shutdown().await;
}
