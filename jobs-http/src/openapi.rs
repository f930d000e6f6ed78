//! The OpenAPI 3 description of the routes, served at `GET /openapi.json`.

use axum::extract::State;
use axum::Json;
use jobs_runtime::{Catalog, SubmitOptions};
use serde_json::{json, Map, Value};

use crate::AppState;

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn id_parameter() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": "the job's id (a UUID)",
        "schema": { "type": "string", "format": "uuid" }
    })
}

fn job_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } }
    })
}

fn events_response() -> Value {
    json!({
        "description": "server-sent events; each event's name is its kind and its data the JSON of a JobEvent",
        "content": { "text/event-stream": { "schema": {
            "type": "object", "required": ["event", "data"],
            "properties": {
                "event": { "type": "string", "enum": ["submitted", "released", "started", "progress", "cancelRequested", "requeued", "retried", "deleted", "finished", "queuePaused", "queueResumed", "resync", "lagged", "shutdown"], "description": "queuePaused and queueResumed ({\"queue\"}) and resync (events may have been missed: read the jobs again) only on /events" },
                "data": { "type": "string", "description": "the event's JSON" }
            }
        } } }
    })
}

/// The schema of a job as every route answers it (`waitingOn`, `parents` and `children`
/// only from `GET /jobs/{id}`), kept apart from [`document`] so that its `json!` does not
/// grow past the macro recursion limit.
fn job_schema(status_enum: &Value, waiting_on: Value, attempt_errors: Value) -> Value {
    json!({
        "type": "object",
        "required": [
            "id", "jobType", "status", "payload", "progress", "error", "attempt", "cancelRequested",
            "createdAt", "startedAt", "finishedAt", "runAt", "priority", "maxAttempts", "timeoutMs",
            "errors", "failures", "uniqueKey", "queue", "concurrencyKey", "concurrencyLimit",
            "traceParent", "dependsOn", "onParentFailure", "payloadFrom", "flow"
        ],
        "properties": {
            "id": { "type": "string", "format": "uuid" },
            "jobType": { "type": "string" },
            "status": { "type": "string", "enum": status_enum },
            "payload": {},
            "progress": { "allOf": [{ "$ref": "#/components/schemas/Progress" }], "nullable": true },
            "error": { "type": "string", "nullable": true },
            "attempt": { "type": "integer", "minimum": 0 },
            "cancelRequested": { "type": "boolean" },
            "createdAt": { "type": "string", "format": "date-time" },
            "startedAt": { "type": "string", "format": "date-time", "nullable": true },
            "finishedAt": { "type": "string", "format": "date-time", "nullable": true },
            "runAt": { "type": "string", "format": "date-time" },
            "priority": { "type": "integer" },
            "maxAttempts": { "type": "integer", "minimum": 1 },
            "timeoutMs": { "type": "integer", "nullable": true },
            "errors": attempt_errors,
            "failures": { "type": "integer", "minimum": 0, "description": "how many attempts failed, counting those whose errors are no longer kept" },
            "uniqueKey": { "type": "string", "nullable": true },
            "queue": { "type": "string" },
            "concurrencyKey": { "type": "string", "nullable": true },
            "concurrencyLimit": { "type": "integer", "minimum": 1, "nullable": true },
            "traceParent": { "type": "string", "nullable": true, "description": "the W3C traceparent of the span it was submitted in, which its executions continue" },
            "dependsOn": { "type": "array", "items": { "type": "string", "format": "uuid" }, "description": "the jobs it waits for (its parents), in order: it is Waiting until they have ended as it needs" },
            "onParentFailure": { "type": "string", "enum": ["cancel", "run"], "description": "when a parent fails or is canceled: cancel this job too, or run it anyway once every parent has finished" },
            "payloadFrom": { "type": "string", "enum": ["submitted", "parent", "parents", "batch"], "description": "where its arguments come from once its parents are done: its own payload, its parent's result, the array of its parents' results, or a summary of which parents succeeded, failed and were canceled (a batch's callback)" },
            "flow": { "type": "string", "format": "uuid", "nullable": true, "description": "the flow or batch it belongs to (GET /flows/{id}), or null" },
            "waitingOn": waiting_on,
            "parents": { "type": "array", "items": { "type": "string", "format": "uuid" }, "description": "GET /jobs/{id} only: the jobs it waits for (dependsOn)" },
            "children": { "type": "array", "items": { "type": "string", "format": "uuid" }, "nullable": true, "description": "GET /jobs/{id} only: the jobs that wait for it, oldest first; null when the store cannot list them" }
        }
    })
}

/// The document, with the submit body described per job type of `catalog`.
pub(crate) fn document(catalog: &Catalog) -> Value {
    let status_enum = json!([
        "Waiting",
        "Queued",
        "Running",
        "Succeeded",
        "Failed",
        "Canceled"
    ]);
    let waiting_on = json!({
        "type": "object", "nullable": true,
        "description": "GET /jobs/{id} only: why a due Queued job waits, when a limit holds it",
        "required": ["limit", "reason"],
        "properties": {
            "limit": { "type": "string", "enum": ["paused", "rate", "key"] },
            "reason": { "type": "string", "description": "such as \"queue exports paused\", \"rate limit of SendEmail\", \"key SyncTenant:42 busy\"" }
        }
    });
    let attempt_errors = json!({
        "type": "array",
        "maxItems": jobs_runtime::Job::KEPT_ERRORS,
        "description": format!(
            "the first failed attempt's error and the latest ones, each message at most {} bytes",
            jobs_runtime::AttemptError::MAX_MESSAGE_BYTES
        ),
        "items": {
            "type": "object", "required": ["attempt", "message", "at"],
            "properties": {
                "attempt": { "type": "integer" },
                "message": { "type": "string" },
                "at": { "type": "string", "format": "date-time", "description": "when the attempt failed" },
                "startedAt": { "type": "string", "format": "date-time", "description": "when the attempt started" }
            }
        }
    });
    let mut document = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "jobs",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Submit background jobs, watch their status and progress, fetch their results and cancel them. Without an API token only loopback host names are served (403 host_not_allowed for others)."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": { "error": {
                        "type": "object", "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string", "description": "stable: unknown_job_type, invalid_payload, invalid_body, unsupported_media_type, body_too_large, payload_too_large, invalid_id, invalid_query, invalid_queue, invalid_options, store_full, not_found, not_succeeded, not_retryable, unique_key_held, parents_not_done, unknown_parent, not_finished, unauthorized, host_not_allowed, too_many_streams, json_required, shutting_down, store_unavailable, invalid_input, conflict, internal" },
                            "message": { "type": "string" },
                            "knownTypes": { "type": "array", "items": { "type": "string" } },
                            "status": { "type": "string", "enum": status_enum },
                            "jobError": { "type": "string", "nullable": true },
                            "limitBytes": { "type": "integer" },
                            "parent": { "type": "string", "format": "uuid", "description": "unknown_parent: the parent that is not stored" }
                        }
                    } }
                },
                "Progress": {
                    "type": "object", "required": ["percent", "message"],
                    "properties": {
                        "percent": { "type": "integer", "minimum": 0, "maximum": 100 },
                        "message": { "type": "string" }
                    }
                }
            }
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/": { "get": {
                "summary": "the dashboard page; never needs the token (the page asks for it)", "security": [],
                "responses": { "200": { "description": "the page", "content": { "text/html": { "schema": { "type": "string" } } } } }
            } },
            "/health": { "get": {
                "summary": "liveness; never needs the token", "security": [],
                "responses": { "200": { "description": "up" } }
            } },
            "/jobs": {
                "post": {
                    "summary": "submit a job",
                    "parameters": [
                        { "name": "traceparent", "in": "header", "required": false, "schema": { "type": "string" },
                          "description": "W3C trace context (version-traceid-parentid-flags, lower-case hex): the job's executions continue this trace (kept as the job's traceParent); a malformed or repeated value is ignored, as the W3C recommendation asks, and a request already running in a traced span keeps that span's context" }
                    ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": submit_schema(catalog) } } },
                    "responses": {
                        "201": job_response("the job, Queued (Waiting when it has parents that have not ended as it needs)"),
                        "200": job_response("the active job that holds the uniqueKey; nothing was created"),
                        "400": error("unknown_job_type, invalid_payload, invalid_options or invalid_body"),
                        "401": error("unauthorized"),
                        "409": error("unknown_parent: a job of dependsOn is not stored (with its id as parent); nothing was stored"),
                        "413": error("body_too_large or payload_too_large"),
                        "415": error("unsupported_media_type"),
                        "422": error("invalid_body: well-formed JSON of the wrong shape"),
                        "503": error("store_full (the store holds as many active jobs as it may; nothing was stored), shutting_down or store_unavailable, with Retry-After")
                    }
                },
                "get": {
                    "summary": "list jobs, newest first",
                    "parameters": [
                        { "name": "status", "in": "query", "schema": { "type": "string", "enum": status_enum } },
                        { "name": "type", "in": "query", "schema": { "type": "string" } },
                        { "name": "queue", "in": "query", "schema": { "type": "string" } },
                        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 } },
                        { "name": "cursor", "in": "query", "schema": { "type": "string", "format": "uuid" } }
                    ],
                    "responses": {
                        "200": { "description": "a page", "content": { "application/json": { "schema": {
                            "type": "object", "required": ["jobs", "nextCursor"],
                            "properties": {
                                "jobs": { "type": "array", "items": { "$ref": "#/components/schemas/Job" } },
                                "nextCursor": { "type": "string", "format": "uuid", "nullable": true }
                            }
                        } } } },
                        "400": error("invalid_query or invalid_id (cursor)"),
                        "401": error("unauthorized")
                    }
                }
            },
            "/jobs/{id}": {
                "get": {
                    "summary": "a job's status and progress",
                    "parameters": [id_parameter()],
                    "responses": { "200": job_response("the job"), "400": error("invalid_id"), "401": error("unauthorized"), "404": error("not_found") }
                },
                "delete": {
                    "summary": "delete a finished job and its result",
                    "parameters": [id_parameter()],
                    "responses": {
                        "204": { "description": "deleted" },
                        "400": error("invalid_id"), "401": error("unauthorized"), "404": error("not_found"),
                        "409": error("not_finished, with the job's status")
                    }
                }
            },
            "/jobs/{id}/result": { "get": {
                "summary": "a succeeded job's result",
                "parameters": [id_parameter()],
                "responses": {
                    "200": { "description": "the result", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["result"], "properties": { "result": {} }
                    } } } },
                    "400": error("invalid_id"), "401": error("unauthorized"), "404": error("not_found"),
                    "409": error("not_succeeded, with the job's status")
                }
            } },
            "/jobs/{id}/cancel": { "post": {
                "summary": "cancel a job; the request must say Content-Type: application/json (a cross-site form cannot), its body is ignored",
                "parameters": [id_parameter()],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {} } } },
                "responses": {
                    "200": { "description": "whether the cancel took effect", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["canceled", "status"],
                        "properties": { "canceled": { "type": "boolean" }, "status": { "type": "string", "enum": status_enum } }
                    } } } },
                    "400": error("invalid_id"), "401": error("unauthorized"), "404": error("not_found"),
                    "415": error("json_required")
                }
            } },
            "/jobs/{id}/events": { "get": {
                "summary": "one job's events, until its finished event (at once for a finished job); every stream ends with a shutdown event when the server stops",
                "parameters": [id_parameter()],
                "responses": { "200": events_response(), "400": error("invalid_id"), "401": error("unauthorized"), "404": error("not_found"), "503": error("too_many_streams") }
            } },
            "/events": { "get": {
                "summary": "every job's events; the stream ends with a shutdown event when the server stops",
                "responses": { "200": events_response(), "401": error("unauthorized"), "503": error("too_many_streams") }
            } },
            "/job-types": { "get": {
                "summary": "the job types this service runs",
                "responses": {
                    "200": { "description": "the catalog", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["jobTypes"],
                        "properties": { "jobTypes": { "type": "array", "items": {
                            "type": "object", "required": ["type", "declaredAt", "argsSchema"],
                            "properties": {
                                "type": { "type": "string" },
                                "declaredAt": { "type": "string", "description": "file:line of the executor" },
                                "argsSchema": {
                                    "description": "JSON Schema of the payload when the argument type implements schemars::JsonSchema, else null",
                                    "type": "object", "nullable": true
                                }
                            }
                        } } }
                    } } } },
                    "401": error("unauthorized")
                }
            } },
            "/metrics": { "get": {
                "summary": "Prometheus metrics: jobs by type and status, queue depth, execution durations",
                "responses": {
                    "200": { "description": "Prometheus text format 0.0.4", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "401": error("unauthorized")
                }
            } },
            "/openapi.json": { "get": {
                "summary": "this document", "security": [],
                "responses": { "200": { "description": "OpenAPI 3" } }
            } }
        }
    });
    if let Some(paths) = document["paths"].as_object_mut() {
        for more in [operator_paths(&status_enum), flow_paths()] {
            if let Value::Object(more) = more {
                paths.extend(more);
            }
        }
    }
    let defs = shared_definitions(catalog);
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        schemas.insert(
            "Job".into(),
            job_schema(&status_enum, waiting_on, attempt_errors),
        );
        schemas.extend(flow_schemas());
        schemas.extend(defs);
    }
    document
}

/// The schemas of a flow as it stands ([`jobs_runtime::FlowView`]) and of its cancel
/// ([`jobs_runtime::FlowCancellation`]).
fn flow_schemas() -> Map<String, Value> {
    let count =
        |description: &str| json!({ "type": "integer", "minimum": 0, "description": description });
    let schemas = json!({
        "Flow": {
            "type": "object", "required": ["id", "members", "edges", "counts"],
            "description": "a flow or batch as it stands",
            "properties": {
                "id": { "type": "string", "format": "uuid" },
                "members": { "type": "array", "items": { "$ref": "#/components/schemas/Job" }, "description": "its jobs, in the order they were submitted (of their ids)" },
                "edges": { "type": "array", "description": "each member's parents, in the order of the members and of their dependsOn; a parent may be a job outside the flow", "items": {
                    "type": "object", "required": ["parent", "child"],
                    "properties": {
                        "parent": { "type": "string", "format": "uuid", "description": "the job waited for" },
                        "child": { "type": "string", "format": "uuid", "description": "the member that waits" }
                    }
                } },
                "counts": {
                    "type": "object",
                    "required": ["total", "finished", "waiting", "queued", "running", "succeeded", "failed", "canceled"],
                    "description": "how many members are in each status: finished of total have finished",
                    "properties": {
                        "total": count("every member"),
                        "finished": count("succeeded, failed or canceled"),
                        "waiting": count("Waiting for their parents"),
                        "queued": count("Queued"),
                        "running": count("Running"),
                        "succeeded": count("Succeeded"),
                        "failed": count("Failed"),
                        "canceled": count("Canceled")
                    }
                }
            }
        },
        "FlowCancellation": {
            "type": "object", "required": ["members", "canceled", "stopRequested"],
            "properties": {
                "members": count("the flow's members"),
                "canceled": count("members that were waiting or queued and are canceled now: they never run"),
                "stopRequested": count("running members asked to stop; each ends Canceled when its executor gives up")
            }
        }
    });
    match schemas {
        Value::Object(schemas) => schemas,
        _ => Map::new(),
    }
}

/// `GET /flows/{id}` and `POST /flows/{id}/cancel`.
fn flow_paths() -> Value {
    let flow_id = json!({
        "name": "id", "in": "path", "required": true,
        "description": "the flow's id (a UUID): the flow field of its jobs",
        "schema": { "type": "string", "format": "uuid" }
    });
    json!({
        "/flows/{id}": { "get": {
            "summary": "a flow or batch as it stands: its members with their statuses, the edges between them (parent → child), and how many are in each status",
            "parameters": [flow_id],
            "responses": {
                "200": { "description": "the flow", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Flow" } } } },
                "400": error("invalid_id"), "401": error("unauthorized"),
                "404": error("not_found: no stored job belongs to the flow")
            }
        } },
        "/flows/{id}/cancel": { "post": {
            "summary": "cancel every member of a flow that has not finished: waiting and queued members at once (a batch's callback does not run), running ones asked to stop. The request must say Content-Type: application/json; its body is ignored",
            "parameters": [flow_id],
            "requestBody": { "required": true, "content": { "application/json": { "schema": {} } } },
            "responses": {
                "200": { "description": "what the cancel did", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/FlowCancellation" } } } },
                "400": error("invalid_id"), "401": error("unauthorized"),
                "404": error("not_found: no stored job belongs to the flow"),
                "415": error("json_required")
            }
        } }
    })
}

/// The operator's routes and the dashboard's files, kept apart from [`document`] so that
/// neither `json!` grows past the macro recursion limit.
fn operator_paths(status_enum: &Value) -> Value {
    let mut nullable_statuses = status_enum.clone();
    if let Some(statuses) = nullable_statuses.as_array_mut() {
        statuses.push(Value::Null);
    }
    let queue = json!({
        "type": "object",
        "required": ["queue", "queued", "scheduled", "running", "finishedPerMinute", "failedPerMinute", "workers", "pausedSince"],
        "properties": {
            "queue": { "type": "string" },
            "queued": { "type": "integer", "minimum": 0 },
            "scheduled": { "type": "integer", "minimum": 0 },
            "running": { "type": "integer", "minimum": 0 },
            "finishedPerMinute": { "type": "number", "minimum": 0 },
            "failedPerMinute": { "type": "number", "minimum": 0 },
            "pausedSince": { "type": "string", "format": "date-time", "nullable": true, "description": "when the queue was paused; null while it runs" },
            "workers": { "type": "array", "items": {
                "type": "object", "required": ["id", "host", "pid", "concurrency", "lastSeen", "quiet"],
                "properties": {
                    "id": { "type": "string" },
                    "host": { "type": "string" },
                    "pid": { "type": "integer" },
                    "concurrency": { "type": "integer", "minimum": 0 },
                    "lastSeen": { "type": "string", "format": "date-time" },
                    "quiet": { "type": "boolean", "description": "no heartbeat for three beats: the process may be gone" }
                }
            } }
        }
    });
    json!({
            "/jobs/{id}/retry": { "post": {
                "summary": "queue a Failed or Canceled job again; it keeps its attempts and errors. The request must say Content-Type: application/json; its body is ignored",
                "parameters": [id_parameter()],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {} } } },
                "responses": {
                    "200": job_response("the job, Queued again"),
                    "400": error("invalid_id"), "401": error("unauthorized"), "404": error("not_found"),
                    "409": error("not_retryable (with the job's status), unique_key_held or parents_not_done"),
                    "415": error("json_required")
                }
            } },
            "/jobs/bulk": { "post": {
                "summary": "cancel, retry or delete every job matching a filter, newest first; with dryRun, only count them",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["action", "filter"], "additionalProperties": false,
                    "properties": {
                        "action": { "type": "string", "enum": ["cancel", "retry", "delete"] },
                        "filter": {
                            "type": "object", "additionalProperties": false,
                            "properties": {
                                "status": { "type": "string", "enum": nullable_statuses, "nullable": true, "description": "null or absent: any" },
                                "type": { "type": "string", "nullable": true, "description": "null, empty or absent: any" },
                                "queue": { "type": "string", "nullable": true, "description": "null, empty or absent: any" }
                            }
                        },
                        "dryRun": { "type": "boolean", "default": false }
                    }
                } } } },
                "responses": {
                    "200": { "description": "how many matched and how many changed", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["matched", "changed"],
                        "properties": { "matched": { "type": "integer", "minimum": 0 }, "changed": { "type": "integer", "minimum": 0 } }
                    } } } },
                    "400": error("invalid_body (a filter value)"),
                    "401": error("unauthorized"),
                    "415": error("unsupported_media_type"),
                    "422": error("invalid_body: well-formed JSON of the wrong shape")
                }
            } },
            "/queues": { "get": {
                "summary": "per queue: queued, scheduled and running jobs, finished and failed per minute (last five whole minutes), and the worker processes serving it",
                "responses": {
                    "200": { "description": "the queues, by name", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["queues"],
                        "properties": { "queues": { "type": "array", "items": queue } }
                    } } } },
                    "401": error("unauthorized")
                }
            } },
            "/queues/{queue}/pause": { "post": pause_path(true) },
            "/queues/{queue}/resume": { "post": pause_path(false) },
            "/throughput": { "get": {
                "summary": "jobs finished per minute over every queue, oldest first; the last entry is the minute under way",
                "parameters": [
                    { "name": "minutes", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1440, "default": 60 } }
                ],
                "responses": {
                    "200": { "description": "the series", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["minutes"],
                        "properties": { "minutes": { "type": "array", "items": {
                            "type": "object", "required": ["minute", "succeeded", "failed", "canceled"],
                            "properties": {
                                "minute": { "type": "string", "format": "date-time" },
                                "succeeded": { "type": "integer", "minimum": 0 },
                                "failed": { "type": "integer", "minimum": 0 },
                                "canceled": { "type": "integer", "minimum": 0 }
                            }
                        } } }
                    } } } },
                    "400": error("invalid_query"),
                    "401": error("unauthorized")
                }
            } },
            "/dashboard/app.js": { "get": {
                "summary": "the dashboard's script", "security": [],
                "responses": { "200": { "description": "the script", "content": { "text/javascript": { "schema": { "type": "string" } } } } }
            } },
            "/dashboard/app.css": { "get": {
                "summary": "the dashboard's style sheet", "security": [],
                "responses": { "200": { "description": "the style sheet", "content": { "text/css": { "schema": { "type": "string" } } } } }
            } }
    })
}

/// `POST /queues/{queue}/pause` (`pause`) or `/resume`.
fn pause_path(pause: bool) -> Value {
    let (summary, state) = if pause {
        ("pause a queue for every process on the store, until resumed (restarts keep it paused): running jobs finish, queued ones wait. The request must say Content-Type: application/json; its body is ignored", "paused")
    } else {
        ("resume a paused queue: its due jobs are claimed again at once. The request must say Content-Type: application/json; its body is ignored", "running")
    };
    json!({
        "summary": summary,
        "parameters": [{ "name": "queue", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$" } }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": {} } } },
        "responses": {
            "200": { "description": format!("the queue is {state} now"), "content": { "application/json": { "schema": {
                "type": "object", "required": ["queue", "paused", "changed"],
                "properties": {
                    "queue": { "type": "string" },
                    "paused": { "type": "boolean", "enum": [pause] },
                    "changed": { "type": "boolean", "description": format!("false when it was {state} already") }
                }
            } } } },
            "400": error("invalid_queue"), "401": error("unauthorized"), "415": error("json_required")
        }
    })
}

/// `GET /openapi.json`.
pub(crate) async fn serve(State(state): State<AppState>) -> Json<Value> {
    Json(document(state.jobs.catalog()))
}

/// The run options every submission may carry.
fn submit_options() -> Map<String, Value> {
    let options = json!({
        "runAt": { "type": "string", "format": "date-time", "description": "not before this time (RFC 3339)" },
        "delayMs": { "type": "integer", "minimum": 0, "maximum": crate::routes::MAX_DELAY_MS, "description": "not before this long from now (at most a hundred years)" },
        "priority": { "type": "integer", "minimum": -32768, "maximum": 32767, "description": "higher runs first; the type's by default" },
        "retries": { "type": "integer", "minimum": 0, "maximum": SubmitOptions::MAX_RETRIES, "description": "the type's by default" },
        "timeoutMs": { "type": "integer", "minimum": 1, "maximum": SubmitOptions::MAX_TIMEOUT.as_millis() as u64, "description": "per attempt (at most a hundred years); the type's by default" },
        "uniqueKey": { "type": "string", "minLength": 1, "maxLength": SubmitOptions::MAX_UNIQUE_KEY_CHARS, "description": "while a job of this type with this key is Queued or Running, that job is returned instead" },
        "queue": { "type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$", "description": "the named queue; the type's, or default" },
        "concurrencyKey": { "type": "string", "minLength": 1, "maxLength": SubmitOptions::MAX_CONCURRENCY_KEY_CHARS, "description": "at most concurrencyLimit jobs with this key run at once, across types and processes; the type's key by default" },
        "concurrencyLimit": { "type": "integer", "minimum": 1, "maximum": SubmitOptions::MAX_CONCURRENCY_LIMIT, "description": "how many jobs of the key run at once (default: the type's, else 1); for a type without a key of its own and no concurrencyKey, the job is keyed by its type" },
        "dependsOn": {
            "type": "array", "items": { "type": "string", "format": "uuid" },
            "maxItems": SubmitOptions::MAX_PARENTS, "uniqueItems": true,
            "description": "the jobs it waits for (its parents), each stored already (409 unknown_parent otherwise) and named once: it is Waiting until they have all succeeded (see onParentFailure); a job with parents has no uniqueKey"
        },
        "onParentFailure": { "type": "string", "enum": ["cancel", "run"], "default": "cancel", "description": "when a parent fails or is canceled: cancel this job too (and its own dependants), or run it anyway once every parent has finished" },
        "payloadFrom": { "type": "string", "enum": ["submitted", "parent", "parents", "batch"], "default": "submitted", "description": "where its arguments come from: its own payload; its one parent's result; the array of its parents' results, in the order of dependsOn (null for a parent without one); or a summary of its parents' ends ({\"counts\", \"succeeded\", \"failed\", \"canceled\"}, with onParentFailure run). From the parents, the payload is left out" },
        "flow": { "type": "string", "format": "uuid", "description": "the flow or batch it joins: listed, shown and canceled with the flow's other members (GET /flows/{id})" }
    });
    match options {
        Value::Object(options) => options,
        _ => Map::new(),
    }
}

/// The body of `POST /jobs`: one of the catalog's types, each with its payload's schema
/// where the executor declares one (any JSON where it does not), and the run options.
/// The payload is required unless the type's schema admits `null`, which is what a
/// missing payload is.
fn submit_schema(catalog: &Catalog) -> Value {
    let variants: Vec<Value> = catalog
        .entries()
        .into_iter()
        .map(|(name, entry)| {
            let schema = entry.executor().args_schema();
            let takes_null = schema.as_ref().is_none_or(admits_null);
            let payload = schema
                .map(|schema| to_openapi_schema(schema, &prefix_of(name)))
                .unwrap_or_else(|| json!({ "description": "any JSON; the executor validates it" }));
            let mut properties = submit_options();
            properties.insert("type".into(), json!({ "type": "string", "enum": [name] }));
            properties.insert("payload".into(), payload);
            json!({
                "title": name,
                "type": "object", "required": ["type"], "additionalProperties": false,
                "properties": properties,
                "anyOf": payload_sources(takes_null),
                "allOf": [
                    { "not": { "required": ["runAt", "delayMs"] } },
                    { "not": { "required": ["uniqueKey", "dependsOn"], "properties": { "dependsOn": { "minItems": 1 } } } }
                ]
            })
        })
        .collect();
    json!({
        "description": "a job of one of the service's types (GET /job-types) with its payload; runAt and delayMs are two ways to say when: give at most one; a job with parents (dependsOn) has no uniqueKey",
        "oneOf": variants
    })
}

/// Where a submission's arguments come from, each with what it needs: its own payload
/// (required unless the type takes `null`, which is what a missing payload is), or its
/// parents' results, with the parents that needs and without a payload.
fn payload_sources(takes_null: bool) -> Value {
    let own = if takes_null {
        json!({ "properties": { "payloadFrom": { "enum": ["submitted"] } } })
    } else {
        json!({ "required": ["payload"], "properties": { "payloadFrom": { "enum": ["submitted"] } } })
    };
    json!([
        own,
        {
            "required": ["payloadFrom", "dependsOn"], "not": { "required": ["payload"] },
            "properties": { "payloadFrom": { "enum": ["parent"] }, "dependsOn": { "minItems": 1, "maxItems": 1 } }
        },
        {
            "required": ["payloadFrom", "dependsOn"], "not": { "required": ["payload"] },
            "properties": { "payloadFrom": { "enum": ["parents"] }, "dependsOn": { "minItems": 1 } }
        },
        {
            "required": ["payloadFrom", "dependsOn", "onParentFailure"], "not": { "required": ["payload"] },
            "properties": { "payloadFrom": { "enum": ["batch"] }, "dependsOn": { "minItems": 1 }, "onParentFailure": { "enum": ["run"] } }
        }
    ])
}

/// The name prefix under which a job type's schema definitions go in the components.
fn prefix_of(job_type: &str) -> String {
    let clean: String = job_type
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.")
}

/// The definitions (`$defs`) of every job type's schema, renamed with the type's prefix,
/// as component schemas.
fn shared_definitions(catalog: &Catalog) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, entry) in catalog.entries() {
        let Some(schema) = entry.executor().args_schema() else {
            continue;
        };
        let prefix = prefix_of(name);
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(defs)) = schema.get(key) {
                for (def, value) in defs {
                    out.insert(
                        format!("{prefix}{def}"),
                        to_openapi_schema(value.clone(), &prefix),
                    );
                }
            }
        }
    }
    out
}

/// Whether a JSON Schema lets `null` through (at its top level).
fn admits_null(schema: &Value) -> bool {
    match schema {
        Value::Bool(admits) => *admits,
        Value::Object(schema) => match schema.get("type") {
            None => !schema.contains_key("enum") && !schema.contains_key("const"),
            Some(Value::String(kind)) => kind == "null",
            Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "null"),
            Some(_) => false,
        },
        _ => false,
    }
}

/// A JSON Schema (2020-12, as schemars writes it) as an OpenAPI 3.0 schema object: no
/// `$schema`, a `type` list becomes one type with `nullable` (or an `anyOf`), `const`
/// becomes a one-value `enum`, and references to its definitions point at the
/// components they are moved to (under `prefix`).
fn to_openapi_schema(schema: Value, prefix: &str) -> Value {
    let Value::Object(mut schema) = schema else {
        // `true` accepts anything; `false`, nothing.
        return match schema {
            Value::Bool(false) => json!({ "not": {} }),
            _ => json!({}),
        };
    };
    for key in ["$schema", "$id", "$defs", "definitions", "examples"] {
        schema.remove(key);
    }
    if let Some(Value::String(reference)) = schema.get("$ref") {
        let name = reference
            .strip_prefix("#/$defs/")
            .or_else(|| reference.strip_prefix("#/definitions/"));
        if let Some(name) = name {
            return json!({ "$ref": format!("#/components/schemas/{prefix}{name}") });
        }
    }
    if let Some(value) = schema.remove("const") {
        schema.insert("enum".into(), json!([value]));
    }
    if let Some(Value::Array(kinds)) = schema.get("type").cloned() {
        let nullable = kinds.iter().any(|kind| kind == "null");
        let others: Vec<Value> = kinds.into_iter().filter(|kind| kind != "null").collect();
        schema.remove("type");
        match others.as_slice() {
            [] => {
                schema.insert("enum".into(), json!([null]));
            }
            [one] => {
                schema.insert("type".into(), one.clone());
            }
            many => {
                let any: Vec<Value> = many.iter().map(|kind| json!({ "type": kind })).collect();
                schema.insert("anyOf".into(), Value::Array(any));
            }
        }
        if nullable {
            schema.insert("nullable".into(), Value::Bool(true));
        }
    }
    for (key, value) in schema.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" => {
                if let Value::Object(fields) = value {
                    for field in fields.values_mut() {
                        *field = to_openapi_schema(field.take(), prefix);
                    }
                }
            }
            "items" | "additionalProperties" | "not" if value.is_object() => {
                *value = to_openapi_schema(value.take(), prefix);
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                if let Value::Array(parts) = value {
                    for part in parts.iter_mut() {
                        *part = to_openapi_schema(part.take(), prefix);
                    }
                }
            }
            _ => {}
        }
    }
    Value::Object(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schemas_become_openapi_3_0_schemas() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "note": { "type": ["string", "null"] },
                "kind": { "const": "a" },
                "either": { "type": ["integer", "string"] },
                "inner": { "$ref": "#/$defs/Inner" },
                "list": { "type": "array", "items": { "type": ["boolean", "null"] } }
            },
            "$defs": { "Inner": { "type": "object" } }
        });
        let converted = to_openapi_schema(schema, "T.");
        assert_eq!(converted.get("$schema"), None);
        assert_eq!(converted.get("$defs"), None);
        let properties = &converted["properties"];
        assert_eq!(
            properties["note"],
            json!({ "type": "string", "nullable": true })
        );
        assert_eq!(properties["kind"], json!({ "enum": ["a"] }));
        assert_eq!(
            properties["either"],
            json!({ "anyOf": [{ "type": "integer" }, { "type": "string" }] })
        );
        assert_eq!(
            properties["inner"],
            json!({ "$ref": "#/components/schemas/T.Inner" })
        );
        assert_eq!(
            properties["list"]["items"],
            json!({ "type": "boolean", "nullable": true })
        );
    }

    #[test]
    fn a_payload_is_required_unless_its_schema_admits_null() {
        assert!(admits_null(&json!({ "type": ["null", "object"] })));
        assert!(admits_null(&json!({})));
        assert!(admits_null(&json!(true)));
        assert!(!admits_null(&json!({ "type": "string" })));
        assert!(!admits_null(&json!({ "enum": [1, 2] })));
    }
}
