-- Batch operations: an operator's retry or cancel of every saga a filter matched. The matched
-- sagas are fixed when the batch is created (one row each, in order), so that a batch resumed
-- after a restart, or by another replica, acts on exactly those and on each one once: a row
-- gets its result when its saga was acted on. A batch is driven by one instance at a time,
-- under a lease like a saga's.
create table batch_operations (
    id               uuid        primary key,
    action           text        not null check (action in ('retry', 'cancel')),
    -- The filter as posted ({"status", "order_id_prefix", "older_than_s"}).
    filter           jsonb       not null,
    max_sagas        integer     not null,
    operator         text        not null,
    reason           text,
    status           text        not null default 'running' check (status in ('running', 'done')),
    matched          integer     not null default 0,
    owner            text,
    lease_expires_at timestamptz,
    created_at       timestamptz not null default now(),
    finished_at      timestamptz
);

create index batch_operations_running on batch_operations (created_at) where status = 'running';

create table batch_operation_items (
    batch_id  uuid        not null references batch_operations (id),
    order_id  uuid        not null references sagas (order_id),
    position  integer     not null,
    -- null until acted on: done | refused | failed
    result    text        check (result in ('done', 'refused', 'failed')),
    detail    text,
    acted_at  timestamptz,
    primary key (batch_id, order_id)
);

create index batch_operation_items_pending on batch_operation_items (batch_id, position) where result is null;
