-- The orchestrator's durable saga log: one row per saga (its current state, written before the
-- orchestrator acts on it) and an append-only timeline of every attempt, outcome and operator
-- action. A saga's id is its order's id.
create table sagas (
    order_id          uuid primary key,
    idempotency_key   text unique,
    -- The order as accepted (validated) by POST /orders.
    request           jsonb       not null,
    status            text        not null
        check (status in ('pending', 'running', 'completed', 'compensating', 'compensated', 'failed')),
    -- Index of the step being executed (forward) or compensated (backward).
    step_index        integer     not null default 0,
    -- Per-step state: [{name, status, attempts, last_error, started_at, finished_at, ...}].
    steps             jsonb       not null,
    -- Outputs of finished steps by step name (what later steps read).
    outputs           jsonb       not null default '{}',
    failure_reason    text,
    -- Fencing and scheduling: who drives the saga, until when, and when it runs next.
    owner             text,
    lease_expires_at  timestamptz,
    next_run_at       timestamptz not null default now(),
    version           bigint      not null default 0,
    -- Deadlines: forward progress, then the compensation budget once compensating.
    deadline_at       timestamptz not null,
    compensation_deadline_at timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    -- Last step transition (not merely an attempt): what "stuck" is measured from.
    progressed_at     timestamptz not null default now(),
    finished_at       timestamptz
);

-- Recovery scans only sagas that still have work to do.
create index sagas_due on sagas (next_run_at) where status in ('pending', 'running', 'compensating');
-- Listing newest first, optionally by status.
create index sagas_by_status_created on sagas (status, created_at desc);
create index sagas_created on sagas (created_at desc);

create table saga_events (
    id        bigserial   primary key,
    order_id  uuid        not null references sagas (order_id),
    at        timestamptz not null default clock_timestamp(),
    -- saga | action | compensation | reconcile | operator
    kind      text        not null,
    step      text,
    attempt   integer,
    -- started | ok | permanent | transient | timeout | happened | not_found | ... (see executor)
    outcome   text        not null,
    detail    text,
    -- Who caused the event: the orchestrator instance, or the operator named in the request.
    actor     text        not null
);

create index saga_events_by_order on saga_events (order_id, id);
