//! The OpenAPI 3 description of the routes, served at `GET /openapi.json`.

use axum::Json;
use serde_json::{json, Value};

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
                "event": { "type": "string", "enum": ["submitted", "started", "progress", "cancelRequested", "requeued", "retried", "deleted", "finished", "lagged", "shutdown"] },
                "data": { "type": "string", "description": "the event's JSON" }
            }
        } } }
    })
}

/// The document.
pub(crate) fn document() -> Value {
    let status_enum = json!(["Queued", "Running", "Succeeded", "Failed", "Canceled"]);
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
                            "code": { "type": "string", "description": "stable: unknown_job_type, invalid_payload, invalid_body, unsupported_media_type, body_too_large, payload_too_large, invalid_id, invalid_query, not_found, not_succeeded, not_retryable, unique_key_held, not_finished, unauthorized, host_not_allowed, too_many_streams, json_required, shutting_down, store_unavailable, invalid_input, conflict, internal" },
                            "message": { "type": "string" },
                            "knownTypes": { "type": "array", "items": { "type": "string" } },
                            "status": { "type": "string", "enum": status_enum },
                            "jobError": { "type": "string", "nullable": true },
                            "limitBytes": { "type": "integer" }
                        }
                    } }
                },
                "Progress": {
                    "type": "object", "required": ["percent", "message"],
                    "properties": {
                        "percent": { "type": "integer", "minimum": 0, "maximum": 100 },
                        "message": { "type": "string" }
                    }
                },
                "Job": {
                    "type": "object",
                    "required": ["id", "jobType", "status", "payload", "attempt", "cancelRequested", "createdAt"],
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
                        "errors": { "type": "array", "items": {
                            "type": "object", "required": ["attempt", "message", "at"],
                            "properties": {
                                "attempt": { "type": "integer" },
                                "message": { "type": "string" },
                                "at": { "type": "string", "format": "date-time", "description": "when the attempt failed" },
                                "startedAt": { "type": "string", "format": "date-time", "description": "when the attempt started" }
                            }
                        } },
                        "uniqueKey": { "type": "string", "nullable": true },
                        "queue": { "type": "string" }
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
                    "requestBody": { "required": true, "content": { "application/json": { "schema": {
                        "type": "object", "required": ["type"], "additionalProperties": false,
                        "not": { "required": ["runAt", "delayMs"] },
                        "description": "runAt and delayMs are two ways to say when: give at most one",
                        "properties": {
                            "type": { "type": "string" },
                            "payload": {},
                            "runAt": { "type": "string", "format": "date-time", "description": "not before this time" },
                            "delayMs": { "type": "integer", "minimum": 0, "description": "not before this long from now" },
                            "priority": { "type": "integer", "minimum": -32768, "maximum": 32767, "description": "higher runs first; the type's by default" },
                            "retries": { "type": "integer", "minimum": 0, "maximum": u32::MAX, "description": "the type's by default" },
                            "timeoutMs": { "type": "integer", "minimum": 1, "description": "per attempt; the type's by default" },
                            "uniqueKey": { "type": "string", "minLength": 1, "maxLength": 255, "description": "while a job of this type with this key is Queued or Running, that job is returned instead" },
                            "queue": { "type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$", "description": "the named queue; the type's, or default" }
                        }
                    } } } },
                    "responses": {
                        "201": job_response("the job, Queued"),
                        "200": job_response("the active job that holds the uniqueKey; nothing was created"),
                        "400": error("unknown_job_type, invalid_payload, invalid_options or invalid_body"),
                        "401": error("unauthorized"),
                        "413": error("body_too_large or payload_too_large"),
                        "415": error("unsupported_media_type"),
                        "422": error("invalid_body: well-formed JSON of the wrong shape")
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
    if let (Some(paths), Value::Object(more)) = (
        document["paths"].as_object_mut(),
        operator_paths(&status_enum),
    ) {
        paths.extend(more);
    }
    document
}

/// The operator's routes and the dashboard's files, kept apart from [`document`] so that
/// neither `json!` grows past the macro recursion limit.
fn operator_paths(status_enum: &Value) -> Value {
    let queue = json!({
        "type": "object",
        "required": ["queue", "queued", "scheduled", "running", "finishedPerMinute", "failedPerMinute", "workers"],
        "properties": {
            "queue": { "type": "string" },
            "queued": { "type": "integer", "minimum": 0 },
            "scheduled": { "type": "integer", "minimum": 0 },
            "running": { "type": "integer", "minimum": 0 },
            "finishedPerMinute": { "type": "number", "minimum": 0 },
            "failedPerMinute": { "type": "number", "minimum": 0 },
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
                    "409": error("not_retryable (with the job's status) or unique_key_held"),
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
                                "status": { "type": "string", "enum": status_enum },
                                "type": { "type": "string" },
                                "queue": { "type": "string" }
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

/// `GET /openapi.json`.
pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}
