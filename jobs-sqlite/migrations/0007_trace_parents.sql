-- The W3C traceparent of the span a job was submitted in, which its executions continue.
ALTER TABLE jobs ADD COLUMN trace_parent TEXT;
