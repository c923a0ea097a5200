-- Notification: one row per order (the step ledger): the confirmation sent, and the cancellation
-- notice sent when a confirmed order is compensated.
create table notifications (
    order_id             uuid primary key,
    state                text        not null check (state in ('done', 'compensated')),
    tombstone            boolean     not null default false,
    request              jsonb,
    response             jsonb,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    compensated_at       timestamptz,
    customer_id          text generated always as (request ->> 'customer_id') stored,
    confirmation         text generated always as (response ->> 'confirmation') stored,
    cancellation_notice  text
);
