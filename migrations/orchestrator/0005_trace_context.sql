-- The W3C `traceparent` of the request that started the saga, kept so that every run of the
-- saga (after a crash, on another instance, after an operator's retry) joins the same trace.
-- Null when traces are not exported.
alter table sagas add column trace_context text;
